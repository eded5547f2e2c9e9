// sk_msg acceleration of local hops (bpf/local_hops.bpf.c, docs/sidecar.md "sk_msg"):
// loads the sockops and sk_msg programs, attaches sk_msg to the SOCKHASH and sockops,
// through bpf_links, to the application's cgroup and to zproxyd's own (whose sockets the
// data plane inherits: the listen sockets zproxyd creates, so the connections accepted
// on them, and the data plane's upstream connections). Destroying it detaches them.
#pragma once

#include <bpf/libbpf.h>

#include <string>
#include <vector>

#include "bpf/local_hops.skel.h"
#include "controlplane/bpf/options.h"
#include "controlplane/bpf/skeleton.h"

namespace zproxy::controlplane::bpf {

class LocalHops {
 public:
  LocalHops() = default;
  LocalHops(const LocalHops&) = delete;
  LocalHops& operator=(const LocalHops&) = delete;
  ~LocalHops() { Detach(); }

  // `app_cgroup`: sidecar.cgroup (already checked by SidecarInterception: a cgroup v2
  // directory, not the root, not zproxyd's). Fails, with *error saying why, when zproxyd
  // itself runs in the root cgroup (attaching there would take every process of the
  // machine) or the kernel or the process lacks something.
  bool Attach(const std::string& app_cgroup, const BpfOptions& options, std::string* error);
  void Detach();

  bool attached() const { return !links_.empty(); }
  int socks_fd() const { return bpf_map__fd(skel_->maps.zproxy_lh_socks); }
  int stats_fd() const { return bpf_map__fd(skel_->maps.zproxy_lh_stats); }
  // The cgroups the sockops program is attached to (resolved paths).
  const std::vector<std::string>& cgroups() const { return cgroups_; }

 private:
  Skeleton<::local_hops> skel_;
  std::vector<bpf_link*> links_;
  std::vector<std::string> cgroups_;
  bool msg_attached_ = false;
};

// Processes in cgroup `dir` other than this one and zproxy data planes (their loopback
// connections to each other get sk_msg too, and its limits: docs/sidecar.md), for a warning.
int ForeignProcesses(const std::string& dir);

// Sums zproxy_lh_stats over CPUs as Prometheus text (zproxy_sidecar_sk_msg_*), "" when
// `stats_fd` < 0.
std::string LocalHopsPrometheusText(bool enabled, int stats_fd);

}  // namespace zproxy::controlplane::bpf
