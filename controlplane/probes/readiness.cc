#include "controlplane/probes/readiness.h"

namespace zproxy::probes {

Readiness EvaluateReadiness(const ReadinessInputs& in) {
  auto v = [](uint64_t x) { return std::to_string(x); };
  if (in.stopping) return {false, "draining: zproxyd is stopping"};
  if (in.pid <= 0) return {false, "no data plane running"};
  const std::string dp = "data plane pid " + std::to_string(in.pid);
  const uint64_t serving = in.have_sync ? in.serving : in.started_with;
  if (in.have_sync && !in.connected) return {false, dp + " is starting (not connected yet)"};
  // >=: an applied change is ACKed just before it becomes the store's current version.
  if (serving < in.current) {
    return {false, dp + " serves config version " + v(serving) + ", current is " + v(in.current)};
  }
  return {true, dp + " serves config version " + v(serving)};
}

}  // namespace zproxy::probes
