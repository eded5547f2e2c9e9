// Inbound sidecar interception (bpf/sk_lookup.bpf.c, docs/sidecar.md): loads the sk_lookup
// program, puts the inbound listener's sockets (zproxyd owns them) in its SOCKMAP, fills
// sidecar.inbound_ports and attaches it to zproxyd's network namespace through a bpf_link.
// Destroying it detaches (a clean exit); a SIGKILLed zproxyd's link closes with its
// descriptors, so inbound connections fail open: they reach the application directly.
#pragma once

#include <bpf/libbpf.h>

#include <string>
#include <vector>

#include "bpf/sk_lookup.skel.h"
#include "controlplane/bpf/skeleton.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::controlplane::bpf {

class InboundInterception {
 public:
  InboundInterception() = default;
  InboundInterception(const InboundInterception&) = delete;
  InboundInterception& operator=(const InboundInterception&) = delete;
  ~InboundInterception() { Detach(); }

  // `listener_fds`: the inbound listener's listen sockets (one per worker, one reuseport
  // group). false: nothing attached, *error names what is missing (no sk_lookup in the
  // kernel, no CAP_BPF / CAP_NET_ADMIN, ...).
  bool Attach(const zproxy::v1::Sidecar& config, const std::vector<int>& listener_fds,
              std::string* error);
  void Detach();
  bool attached() const { return link_ != nullptr; }

 private:
  Skeleton<::sk_lookup> skel_;
  bpf_link* link_ = nullptr;
};

}  // namespace zproxy::controlplane::bpf
