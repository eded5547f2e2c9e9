#include "controlplane/workers.h"

#include <sched.h>

namespace zproxy::controlplane {

uint32_t AffinityCpuCount() {
  // A fixed cpu_set_t covers 1024 CPUs, the same bound as Limits::kMaxWorkers.
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  int n = CPU_COUNT(&set);
  return n > 0 ? static_cast<uint32_t>(n) : 1;
}

uint32_t ResolveWorkers(uint32_t configured, uint32_t cpus, std::string* note) {
  if (configured == 0) {
    *note = "workers: 0 -> " + std::to_string(cpus) + " (one per CPU in the affinity mask)";
    return cpus;
  }
  if (configured > cpus) {
    *note = "workers: " + std::to_string(configured) + " configured, using " +
            std::to_string(cpus) + " (only " + std::to_string(cpus) + " CPUs in the affinity mask)";
    return cpus;
  }
  *note = "workers: " + std::to_string(configured);
  return configured;
}

}  // namespace zproxy::controlplane
