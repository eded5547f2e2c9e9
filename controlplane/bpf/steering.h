// SO_REUSEPORT steering for one listener's group (one listen socket per worker): each new
// connection goes to the worker on the CPU that received it.
//   eBPF  zproxy_steer (bpf/reuseport.bpf.c) over a REUSEPORT_SOCKARRAY: CPU -> worker
//         through the steering table (or the 4-tuple hash with SteerPolicy::kHash);
//   CBPF  SO_ATTACH_REUSEPORT_CBPF: CPU -> socket index (no CAP_BPF needed);
//   plain the kernel's reuseport hash.
// Each step down is taken when the one above cannot be set up, with one log line naming
// the mode and the reason.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bpf/reuseport.skel.h"
#include "controlplane/bpf/options.h"
#include "controlplane/bpf/skeleton.h"

namespace zproxy::controlplane::bpf {

enum class SteeringMode { kEbpf, kCbpf, kReuseport };
const char* SteeringModeName(SteeringMode mode);  // "ebpf", "cbpf", "reuseport"

// The loaded zproxy_steer program and its maps for one reuseport group.
class ReuseportObject {
 public:
  // Loads (adopting compatible pins under options.pin_dir), fills the maps, attaches to
  // the group of worker_fds (listening sockets, worker i = worker_fds[i]), then pins.
  bool Load(const std::vector<int>& worker_fds, const std::vector<int>& worker_cpus,
            const BpfOptions& options, std::string* error);

  int prog_fd() const;
  int sockarray_fd() const;
  int steering_fd() const;
  const Skeleton<::reuseport>& skeleton() const { return skel_; }

 private:
  Skeleton<::reuseport> skel_;
};

struct SteeringResult {
  SteeringMode mode = SteeringMode::kReuseport;
  SteerPolicy policy = SteerPolicy::kCpu;  // what the eBPF program does (eBPF mode only)
  std::string reason;                      // why the modes above were not taken; empty for eBPF
  std::unique_ptr<ReuseportObject> ebpf;   // set in eBPF mode: keeps maps and pins alive
  // One line for the log, e.g. "steering: eBPF sk_reuseport program zproxy_steer (by CPU)" or
  // "steering: eBPF steering unavailable (load reuseport: Operation not permitted): using CBPF".
  std::string Describe() const;
};

// worker_cpus[i] = the CPU worker i runs on (may be empty or shorter: then worker i is
// assumed on the i-th CPU). Never fails: the worst case is plain reuseport.
SteeringResult AttachSteering(const std::vector<int>& worker_fds,
                              const std::vector<int>& worker_cpus, const BpfOptions& options);

// The CBPF fallback alone (exposed for tests): CPU k -> the socket of the worker on CPU k,
// any other CPU -> CPU % n. Socket index = the order the sockets joined the group, which
// is worker order for zproxyd's sockets.
bool AttachCbpfSteering(int any_group_fd, const std::vector<int>& worker_cpus, size_t sockets,
                        std::string* error);

}  // namespace zproxy::controlplane::bpf
