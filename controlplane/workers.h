// Resolving the `workers` setting into a count: one data plane worker per CPU the process
// may run on, so `taskset -c 0 zproxyd` really confines the data plane to CPU 0.
#pragma once

#include <cstdint>
#include <string>

namespace zproxy::controlplane {

// Number of CPUs in this process's sched_getaffinity mask (at least 1).
uint32_t AffinityCpuCount();

// `configured` 0 = one per CPU in the affinity mask; otherwise min(configured, CPUs),
// because workers beyond the CPUs allowed only add contention. *note explains the
// choice for the startup log.
uint32_t ResolveWorkers(uint32_t configured, uint32_t cpus, std::string* note);

}  // namespace zproxy::controlplane
