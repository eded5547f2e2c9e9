// Renders the data plane's counters in the Prometheus text exposition format (0.0.4).
#pragma once

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
  uint64_t config_version = 0;
};

std::string RenderPrometheus(const std::vector<const WorkerStats*>& workers,
                             const DataplaneInfo& info);

}  // namespace zproxy::dataplane
