#include "controlplane/bpf/bpf_runtime.h"

#include <sched.h>

#include "common/log.h"

namespace zproxy::controlplane::bpf {
namespace {

// Listener names become one path component.
std::string PathSafe(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    if (c == '/' || c == '\0') c = '_';
  }
  return out == "." || out == ".." || out.empty() ? "_" + out : out;
}

}  // namespace

std::vector<int> WorkerCpus(size_t workers) {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int i = 0; i < CPU_SETSIZE; i++) {
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
    }
  }
  std::vector<int> out;
  for (size_t w = 0; w < workers && !cpus.empty(); w++) out.push_back(cpus[w % cpus.size()]);
  return out;
}

void BpfRuntime::Start(const std::string& bpffs_path, const std::vector<ListenerGroup>& groups,
                       const std::vector<int>& worker_cpus, BpfOptions options) {
  for (const ListenerGroup& g : groups) {
    BpfOptions o = options;
    o.pin_dir = bpffs_path.empty() ? "" : bpffs_path + "/steer/" + PathSafe(g.listener);
    if (!g.no_ebpf.empty()) {
      o.disable_ebpf = true;
      o.disable_ebpf_why = g.no_ebpf;
    }
    SteeringResult r = AttachSteering(g.worker_fds, worker_cpus, o);
    if (r.mode == SteeringMode::kEbpf || g.worker_fds.size() < 2 || !g.no_ebpf.empty()) {
      ZLOG_INFO("listener \"%s\": %s", g.listener.c_str(), r.Describe().c_str());
    } else {
      ZLOG_WARN("listener \"%s\": %s", g.listener.c_str(), r.Describe().c_str());
    }
    steering_.push_back(std::move(r));
  }
  options.pin_dir = bpffs_path;
  std::string error;
  auto splice = std::make_unique<SpliceMap>();
  if (splice->Load(options, &error)) {
    splice_ = std::move(splice);
    ZLOG_INFO("sockmap splicing available (SOCKHASH zproxy_splice_pairs, pinned in %s)",
              bpffs_path.c_str());
  } else {
    ZLOG_WARN("sockmap splicing unavailable (%s): pass-through uses splice()", error.c_str());
  }
}

HealthMap* BpfRuntime::LoadHealthMap(const std::string& bpffs_path, BpfOptions options) {
  options.pin_dir = bpffs_path;
  std::string error;
  auto health = std::make_unique<HealthMap>();
  if (health->Load(options, &error)) {
    health_ = std::move(health);
    ZLOG_INFO("health: BPF map zproxy_health (pinned in %s%s)", bpffs_path.c_str(),
              health_->reused() ? ", reused" : "");
  } else {
    ZLOG_WARN("BPF health map unavailable (%s): health lives in a memfd region", error.c_str());
  }
  return health_.get();
}

}  // namespace zproxy::controlplane::bpf
