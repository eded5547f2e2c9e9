// Which cluster a ClientHello goes to on a tcp_proxy listener with sni_routes: the entries
// compiled once per config snapshot, and a lookup that allocates nothing. Pure logic (no
// sockets), unit tested in sni_router_test.cc.
//
// Precedence (docs/tcp-proxy.md, "TLS pass-through routed by SNI"): the most specific server
// name wins (an exact name, then the longest "*." suffix, then an entry without server_names);
// at equal specificity an entry whose alpn matched beats one without alpn, then the first in
// order. No entry matching, or no SNI and no name-less entry: the listener's default.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dataplane/routing/host_pattern.h"
#include "dataplane/tunnel/client_hello.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::tunnel {

class SniRouter {
 public:
  static constexpr int kDefault = -1;

  // Compiles tcp_proxy.sni_routes against the config's clusters. Returns nullptr with
  // *error naming the field under `path` (e.g. "listeners[2].tcp_proxy") when an entry is
  // invalid; zproxyd validated the config first, so only a hand-made one gets here.
  static std::unique_ptr<SniRouter> Build(const zproxy::v1::Config& config,
                                          const zproxy::v1::TcpProxy& tcp_proxy,
                                          const std::string& path, std::string* error);

  // The entry for this ClientHello (index into sni_routes), or kDefault.
  int Pick(const ClientHelloInfo& hello) const;
  // The cluster (index into config.clusters) of an entry, or of the default.
  int cluster(int entry) const {
    return entry == kDefault ? default_cluster_ : entries_[entry].cluster;
  }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::vector<routing::HostPattern> names;  // empty: any name (alpn is then required)
    std::vector<std::string> alpn;            // empty: any (or no) ALPN
    int cluster = -1;
  };
  std::vector<Entry> entries_;
  int default_cluster_ = -1;
};

}  // namespace zproxy::tunnel
