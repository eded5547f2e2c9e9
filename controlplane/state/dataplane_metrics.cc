#include "controlplane/state/dataplane_metrics.h"

#include <cstdint>

namespace zproxy::state {

std::string DataplaneMetricsAddress(const std::string& metrics_address) {
  if (metrics_address.empty()) return "";
  const size_t colon = metrics_address.rfind(':');
  const std::string port = colon == std::string::npos ? "" : metrics_address.substr(colon + 1);
  uint32_t h = 2166136261u;  // FNV-1a: stable across builds and machines
  for (unsigned char c : metrics_address) h = (h ^ c) * 16777619u;
  const uint32_t a = (h >> 16) & 0xff, b = (h >> 8) & 0xff;
  uint32_t c = 1 + (h & 0xff) % 254;      // 1..254
  if (a == 0 && b == 0 && c == 1) c = 2;  // 127.0.0.1 is where users point things
  return "127." + std::to_string(a) + "." + std::to_string(b) + "." + std::to_string(c) + ":" +
         port;
}

}  // namespace zproxy::state
