// Sidecar interception by cgroup (bpf/sidecar.bpf.c, docs/sidecar.md): loads the programs,
// points them at the outbound listener, fills the exclusions and attaches connect4/6,
// getpeername4/6 and sockops to the configured cgroup v2 directory through bpf_links.
// Destroying it detaches them (a clean exit); a SIGKILLed zproxyd's links close with its
// descriptors, so interception fails open (connections go direct), never to a dead port.
#pragma once

#include <bpf/libbpf.h>

#include <string>
#include <vector>

#include "bpf/sidecar.skel.h"
#include "controlplane/bpf/options.h"
#include "controlplane/bpf/skeleton.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::controlplane::bpf {

class SidecarInterception {
 public:
  enum class Outcome {
    kAttached,
    kRefused,      // a config that must not be attached: the root cgroup, zproxyd's own
    kUnavailable,  // the kernel or the process lacks something: the REDIRECT fallback
  };

  SidecarInterception() = default;
  SidecarInterception(const SidecarInterception&) = delete;
  SidecarInterception& operator=(const SidecarInterception&) = delete;
  ~SidecarInterception() { Detach(); }

  // `listener_address` is the outbound listener's ("127.0.0.1:15001", "[::]:15001").
  // *error names what is missing or wrong.
  Outcome Attach(const zproxy::v1::Sidecar& config, const std::string& listener_address,
                 const BpfOptions& options, std::string* error);
  void Detach();

  int orig_by_peer_fd() const { return bpf_map__fd(skel_->maps.zproxy_orig_by_peer); }
  const std::string& cgroup() const { return cgroup_; }

 private:
  bool FillMaps(const zproxy::v1::Sidecar& config, const std::string& listener_address,
                std::string* error);

  Skeleton<::sidecar> skel_;
  std::vector<bpf_link*> links_;
  std::string cgroup_;
};

// The cgroup2 mount that holds `dir` (both resolved), or "" with *error saying why not.
std::string Cgroup2MountOf(const std::string& dir, std::string* error);

// This process's cgroup v2 path relative to the mount ("/x/y" from "0::/x/y" in
// /proc/self/cgroup; "/" for the root).
std::string OwnCgroup();

}  // namespace zproxy::controlplane::bpf
