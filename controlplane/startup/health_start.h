// Start-up step: zproxyd's active health checks. One thread writing the shared health
// region the data plane maps read-only: the pinned BPF map, or a memfd when BPF cannot
// load (one log line). Runs before the listen sockets exist (the rest of the BPF setup
// comes after them) and after the supervisor's signals are blocked, so the checker
// thread inherits the mask.
#pragma once

#include <string>

#include "controlplane/bpf/bpf_runtime.h"
#include "controlplane/health/health_service.h"

namespace zproxy::controlplane::startup {

// Loads the health map under `bpffs_path` into *bpf_runtime (which keeps it until exit;
// its destructor unpins) and starts *health on it, or on a memfd region when the map is
// unavailable or refused. Returns false after logging the error when neither works.
bool StartHealthChecks(const std::string& bpffs_path, const bpf::BpfOptions& options,
                       bpf::BpfRuntime* bpf_runtime, health::HealthService* health);

}  // namespace zproxy::controlplane::startup
