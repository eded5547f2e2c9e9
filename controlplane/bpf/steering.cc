#include "controlplane/bpf/steering.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <linux/filter.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>

#include "bpf/zproxy_structs.h"
#include "controlplane/bpf/bpffs.h"

namespace zproxy::controlplane::bpf {
namespace {

int CpuOf(const std::vector<int>& worker_cpus, size_t worker) {
  return worker < worker_cpus.size() ? worker_cpus[worker] : static_cast<int>(worker);
}

}  // namespace

const char* SteeringModeName(SteeringMode mode) {
  switch (mode) {
    case SteeringMode::kEbpf:
      return "ebpf";
    case SteeringMode::kCbpf:
      return "cbpf";
    case SteeringMode::kReuseport:
      return "reuseport";
  }
  return "?";
}

int ReuseportObject::prog_fd() const { return bpf_program__fd(skel_->progs.zproxy_steer); }
int ReuseportObject::sockarray_fd() const { return bpf_map__fd(skel_->maps.zproxy_listen_socks); }
int ReuseportObject::steering_fd() const { return bpf_map__fd(skel_->maps.zproxy_steering); }

bool ReuseportObject::Load(const std::vector<int>& worker_fds, const std::vector<int>& worker_cpus,
                           const BpfOptions& options, std::string* error) {
  if (worker_fds.empty() || worker_fds.size() > ZPROXY_MAX_WORKERS) {
    *error = "need 1.." + std::to_string(ZPROXY_MAX_WORKERS) + " worker sockets";
    return false;
  }
  if (!options.pin_dir.empty() && !EnsureBpffsDir(options.pin_dir, error)) return false;
  if (!skel_.OpenAndLoad(options.pin_dir, options.keep_pins, "reuseport", error)) return false;

  const uint32_t n = static_cast<uint32_t>(worker_fds.size());
  // Steering table first, sockets second, config last: until cfg says how many workers
  // there are, the program treats every worker index as valid only if its slot is filled.
  std::vector<int32_t> cpu_worker(ZPROXY_MAX_CPUS, -1);
  for (uint32_t w = 0; w < n; w++) {
    int cpu = CpuOf(worker_cpus, w);
    if (cpu >= 0 && cpu < ZPROXY_MAX_CPUS && cpu_worker[cpu] < 0) cpu_worker[cpu] = w;
  }
  for (uint32_t cpu = 0; cpu < ZPROXY_MAX_CPUS; cpu++) {
    // CPUs without a worker (outside the affinity mask) spread like the CBPF fallback.
    uint32_t w = cpu_worker[cpu] >= 0 ? static_cast<uint32_t>(cpu_worker[cpu]) : cpu % n;
    if (bpf_map_update_elem(steering_fd(), &cpu, &w, BPF_ANY) != 0) {
      *error = std::string("fill zproxy_steering: ") + std::strerror(errno);
      return false;
    }
  }
  for (uint32_t w = 0; w < n; w++) {
    uint64_t fd = static_cast<uint64_t>(worker_fds[w]);
    if (bpf_map_update_elem(sockarray_fd(), &w, &fd, BPF_ANY) != 0) {
      *error = "zproxy_listen_socks[" + std::to_string(w) + "]: " + std::strerror(errno);
      return false;
    }
  }
  // A reused (pinned) sockarray may hold more workers from an earlier run: clear them.
  for (uint32_t w = n; w < ZPROXY_MAX_WORKERS; w++) {
    bpf_map_delete_elem(sockarray_fd(), &w);
  }
  zproxy_steer_config cfg{};
  cfg.mode = options.policy == SteerPolicy::kHash ? ZPROXY_STEER_HASH : ZPROXY_STEER_CPU;
  cfg.num_workers = n;
  uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.zproxy_steer_cfg), &zero, &cfg, BPF_ANY) != 0) {
    *error = std::string("zproxy_steer_cfg: ") + std::strerror(errno);
    return false;
  }
  // The program belongs to the group: attaching through any member sets it for all.
  int prog = prog_fd();
  if (setsockopt(worker_fds[0], SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof(prog)) != 0) {
    *error = std::string("SO_ATTACH_REUSEPORT_EBPF: ") + std::strerror(errno);
    return false;
  }
  return skel_.CommitPins(error);
}

bool AttachCbpfSteering(int any_group_fd, const std::vector<int>& worker_cpus, size_t sockets,
                        std::string* error) {
  if (sockets == 0 || sockets > 255) {
    *error = "CBPF steering needs 1..255 sockets";
    return false;
  }
  // A = cpu; for each worker: if A == its cpu return its index; else return A % n.
  std::vector<sock_filter> code;
  code.push_back(
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_CPU)));
  for (size_t w = 0; w < sockets; w++) {
    int cpu = CpuOf(worker_cpus, w);
    if (cpu < 0) continue;
    code.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(cpu), 0, 1));
    code.push_back(BPF_STMT(BPF_RET | BPF_K, static_cast<uint32_t>(w)));
  }
  code.push_back(BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, static_cast<uint32_t>(sockets)));
  code.push_back(BPF_STMT(BPF_RET | BPF_A, 0));
  sock_fprog prog{static_cast<unsigned short>(code.size()), code.data()};
  if (setsockopt(any_group_fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof(prog)) != 0) {
    *error = std::string("SO_ATTACH_REUSEPORT_CBPF: ") + std::strerror(errno);
    return false;
  }
  return true;
}

SteeringResult AttachSteering(const std::vector<int>& worker_fds,
                              const std::vector<int>& worker_cpus, const BpfOptions& options) {
  SteeringResult result;
  std::string error;
  if (worker_fds.size() < 2) {
    // Nothing to steer between; not a fallback.
    result.reason = "one socket per listener";
    return result;
  }
  if (options.disable_ebpf) {
    error = options.disable_ebpf_why.empty() ? "disabled" : options.disable_ebpf_why;
  } else {
    auto obj = std::make_unique<ReuseportObject>();
    if (obj->Load(worker_fds, worker_cpus, options, &error)) {
      result.mode = SteeringMode::kEbpf;
      result.policy = options.policy;
      result.ebpf = std::move(obj);
      return result;
    }
  }
  result.reason = "eBPF steering unavailable (" + error + ")";
  if (options.policy == SteerPolicy::kHash) {
    // CBPF can only steer by CPU; the kernel's own reuseport selection already hashes
    // the 4-tuple, which is the policy asked for.
    return result;
  }
  if (options.disable_cbpf) {
    error = "disabled";
  } else if (AttachCbpfSteering(worker_fds[0], worker_cpus, worker_fds.size(), &error)) {
    result.mode = SteeringMode::kCbpf;
    return result;
  }
  result.reason += ", CBPF steering unavailable (" + error + ")";
  return result;
}

std::string SteeringResult::Describe() const {
  switch (mode) {
    case SteeringMode::kEbpf:
      return std::string("steering: eBPF sk_reuseport program zproxy_steer (") +
             (policy == SteerPolicy::kHash ? "by 4-tuple hash" : "by CPU") + ")";
    case SteeringMode::kCbpf:
      return reason + ": using CBPF";
    case SteeringMode::kReuseport:
      return reason + ": using the kernel's reuseport hash";
  }
  return "";
}

}  // namespace zproxy::controlplane::bpf
