// zproxyd's BPF state for its lifetime: steering per listener (eBPF, else CBPF, else
// plain reuseport), the splice SOCKHASH and the health map, all pinned under bpffs_path.
// Nothing here is fatal: each missing piece is one log line and a fallback, so zproxyd
// without CAP_BPF serves as before. Destroying it is the clean shutdown (unpins).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "controlplane/bpf/health_map.h"
#include "controlplane/bpf/splice_map.h"
#include "controlplane/bpf/steering.h"

namespace zproxy::controlplane::bpf {

struct ListenerGroup {
  std::string listener;         // Listener.name
  std::vector<int> worker_fds;  // worker i's listen socket
  // Non-empty: no eBPF steering for this group, and why (CBPF or the kernel's hash then).
  std::string no_ebpf;
};

class BpfRuntime {
 public:
  BpfRuntime() = default;
  BpfRuntime(const BpfRuntime&) = delete;
  BpfRuntime& operator=(const BpfRuntime&) = delete;

  // The health map (<bpffs_path>/{zproxy_health,zproxy_health_names}) first, on its own:
  // the health checker needs it before any listen socket or data plane exists. Returns
  // nullptr (after one log line) when BPF cannot load: health then lives in a memfd.
  HealthMap* LoadHealthMap(const std::string& bpffs_path, BpfOptions options);

  // Pins: <bpffs_path>/{zproxy_splice_pairs,zproxy_pair_peer,zproxy_counters,zproxy_splice} and
  // <bpffs_path>/steer/<listener>/{zproxy_steering,zproxy_steer_cfg,
  // zproxy_listen_socks,zproxy_steer_stats,zproxy_steer} (one reuseport group each).
  void Start(const std::string& bpffs_path, const std::vector<ListenerGroup>& groups,
             const std::vector<int>& worker_cpus, BpfOptions options);

  const std::vector<SteeringResult>& steering() const { return steering_; }
  // nullptr when unavailable (the data plane then splices with splice()/copies).
  const SpliceMap* splice_map() const { return splice_.get(); }
  HealthMap* health_map() const { return health_.get(); }

 private:
  std::vector<SteeringResult> steering_;
  std::unique_ptr<SpliceMap> splice_;
  std::unique_ptr<HealthMap> health_;
};

// The CPUs of this process's affinity mask in order: the data plane pins worker i to
// cpus[i % size] (dataplane/main.cc), so this is also worker -> CPU.
std::vector<int> WorkerCpus(size_t workers);

}  // namespace zproxy::controlplane::bpf
