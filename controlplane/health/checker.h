// Active health checking: one thread, one epoll loop, every probe nonblocking (no thread per
// endpoint). Each target is probed every interval_ms (±10% jitter so checks of many
// endpoints, and of several zproxyd, do not fire in lockstep), one probe at a time: the
// next starts an interval after the previous finished, and a probe that has not decided
// within timeout_ms fails. `healthy_threshold` consecutive successes make an unhealthy
// endpoint healthy, `unhealthy_threshold` consecutive failures the reverse. Endpoints start
// healthy (a restart of zproxyd must not take every backend out of rotation).
//
// Each transition is written to the health region (the data plane sees it on its next
// Pick), logged as one line, and passed to the callback.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/health_region.h"
#include "common/net_address.h"
#include "common/unique_fd.h"
#include "controlplane/health/endpoint_health.h"
#include "controlplane/health/probe.h"

namespace zproxy::health {

struct CheckTarget {
  std::string cluster;
  std::string address;  // as configured: the key, the Host header, the log text
  NetAddress resolved;
  std::string resolve_error;  // non-empty: every probe fails with it
  uint32_t slot = 0;          // in the health region
  ProbeSpec spec;
  uint32_t interval_ms = 5000;
  uint32_t timeout_ms = 1000;
  uint32_t healthy_threshold = 2;
  uint32_t unhealthy_threshold = 3;
  // State a target starts in when the checker did not check it before: healthy, except
  // for an endpoint whose verdict is inherited (a data plane adopted from a zproxyd that
  // died keeps reading it).
  bool initially_healthy = true;
};

class HealthChecker {
 public:
  using Clock = std::chrono::steady_clock;
  using TransitionFn = std::function<void(const std::string& cluster, const std::string& address,
                                          bool healthy, const std::string& reason)>;

  // `region` (writable) must outlive the checker. `on_transition` runs on the checker
  // thread: keep it short and never call back into the checker from it.
  HealthChecker(HealthRegion* region, TransitionFn on_transition);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  bool Start(std::string* error);
  void Stop();

  // Replaces the target set (thread-safe; applied by the loop within milliseconds).
  // Targets whose (cluster, address) key was already checked keep their health and
  // counters; new ones start healthy (their slot byte is set to 1); removed ones stop.
  void Update(std::vector<CheckTarget> targets);

  // Current state of every target, in key order: a copy published by the loop thread after
  // every probe and every Update, read under mu_ (callable from any thread).
  std::vector<EndpointHealth> States() const;

 private:
  struct Target;

  void Loop();
  void ApplyPending();
  void OnProbeEvents(Target* t, uint32_t events);
  void OnTimers(Clock::time_point now);
  void StartProbe(Target* t, Clock::time_point now);
  void Record(Target* t, Clock::time_point now);
  Clock::time_point NextDeadline() const;
  Clock::duration Jittered(uint32_t ms, double low, double high);
  void PublishStates();

  HealthRegion* region_;
  TransitionFn on_transition_;
  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd: Update() and Stop() poke the loop
  std::thread thread_;
  std::mt19937_64 rng_;

  mutable std::mutex mu_;  // guards pending_, has_pending_, stop_, states_
  std::vector<CheckTarget> pending_;
  bool has_pending_ = false;
  bool stop_ = false;
  std::vector<EndpointHealth> states_;

  // Loop thread only.
  std::vector<std::unique_ptr<Target>> targets_;
};

}  // namespace zproxy::health
