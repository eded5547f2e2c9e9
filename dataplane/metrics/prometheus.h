// Renders the data plane's counters in the Prometheus text exposition format (0.0.4).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/metrics/worker_stats.h"

namespace zproxy::dataplane {

struct DataplaneInfo {
  std::string simd_level;  // parser SIMD path
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool sqpoll = false;
  bool send_zc = false;
  bool registered_files = false;
  bool ktls = false;  // the kernel can take TLS over after the handshake
  uint64_t config_version = 0;
  std::string health_region = "none";  // where health verdicts come from: bpf_map, memfd

  // zproxy_upstream_healthy{cluster,endpoint}: read live at every scrape, so each
  // transition the health checker writes into the shared region shows up.
  struct UpstreamHealth {
    std::string cluster;
    std::string endpoint;           // address as configured
    const uint8_t* byte = nullptr;  // health region byte; nullptr = not checked (always 1)
  };
  std::vector<UpstreamHealth> upstream_health;
};

std::string RenderPrometheus(const std::vector<const WorkerStats*>& workers,
                             const DataplaneInfo& info);

}  // namespace zproxy::dataplane
