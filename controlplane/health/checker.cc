#include "controlplane/health/checker.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <tuple>

#include "common/log.h"

namespace zproxy::health {

struct HealthChecker::Target {
  CheckTarget config;
  Probe probe;
  bool healthy = true;
  uint32_t successes = 0;  // consecutive
  uint32_t failures = 0;   // consecutive
  std::string last_result;
  bool last_ok = false;
  // Wall-clock times for reports (GetHealth); scheduling uses the steady clock.
  EndpointHealth::Time last_check{};
  EndpointHealth::Time last_transition{};
  EndpointHealth::Time checking_since{};
  Clock::time_point next_probe;  // when idle
  Clock::time_point deadline;    // when a probe runs
};

namespace {

// epoll user data for the eventfd; targets are identified by their (stable) address.
constexpr uint64_t kWakeTag = 0;

bool SameSpec(const CheckTarget& a, const CheckTarget& b) {
  auto tls_key = [](const ProbeSpec& s) -> std::string {
    return s.tls != nullptr ? s.tls->key() : "";
  };
  auto grpc_key = [](const ProbeSpec& s) -> std::string {
    return s.grpc_channel != nullptr ? s.grpc_channel->key() + "|" + s.grpc_service : "";
  };
  return a.spec.http_path == b.spec.http_path && a.spec.host == b.spec.host &&
         grpc_key(a.spec) == grpc_key(b.spec) &&
         a.spec.expected_statuses == b.spec.expected_statuses &&
         tls_key(a.spec) == tls_key(b.spec) && a.spec.tls_error == b.spec.tls_error &&
         a.resolved.ToString() == b.resolved.ToString() && a.resolve_error == b.resolve_error;
}

}  // namespace

HealthChecker::HealthChecker(HealthRegion* region, TransitionFn on_transition)
    : region_(region), on_transition_(std::move(on_transition)), rng_(std::random_device{}()) {}

HealthChecker::~HealthChecker() { Stop(); }

bool HealthChecker::Start(std::string* error) {
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  wake_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!epoll_.valid() || !wake_.valid()) {
    *error = std::string("health checker: epoll/eventfd: ") + std::strerror(errno);
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) {
    *error = std::string("health checker: epoll_ctl: ") + std::strerror(errno);
    return false;
  }
  thread_ = std::thread([this] { Loop(); });
  return true;
}

void HealthChecker::Stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  uint64_t one = 1;
  (void)!write(wake_.get(), &one, sizeof(one));
  thread_.join();
}

void HealthChecker::Update(std::vector<CheckTarget> targets) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = std::move(targets);
    has_pending_ = true;
  }
  uint64_t one = 1;
  if (wake_.valid()) (void)!write(wake_.get(), &one, sizeof(one));
}

std::vector<EndpointHealth> HealthChecker::States() const {
  std::lock_guard<std::mutex> lock(mu_);
  return states_;
}

HealthChecker::Clock::duration HealthChecker::Jittered(uint32_t ms, double low, double high) {
  std::uniform_real_distribution<double> d(low, high);
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(ms * d(rng_)));
}

void HealthChecker::Loop() {
  std::vector<epoll_event> events(256);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
    }
    ApplyPending();
    const auto deadline = NextDeadline();
    const auto now = Clock::now();
    int timeout_ms = -1;
    if (deadline != Clock::time_point::max()) {
      // Round up: waking a millisecond early would just spin once more.
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count()));
    }
    int n = epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      ZLOG_ERROR("health checker: epoll_wait: %s; health checks stopped", std::strerror(errno));
      break;
    }
    for (int i = 0; i < n; i++) {
      if (events[i].data.u64 == kWakeTag) {
        uint64_t v;
        (void)!read(wake_.get(), &v, sizeof(v));
        continue;
      }
      OnProbeEvents(static_cast<Target*>(events[i].data.ptr), events[i].events);
    }
    OnTimers(Clock::now());
  }
  for (auto& t : targets_) t->probe.Reset();
}

void HealthChecker::ApplyPending() {
  std::vector<CheckTarget> incoming;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!has_pending_) return;
    incoming = std::move(pending_);
    pending_.clear();
    has_pending_ = false;
  }
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Target>> old;
  for (auto& t : targets_) {
    auto key = std::make_pair(t->config.cluster, t->config.address);
    old.emplace(std::move(key), std::move(t));
  }
  targets_.clear();
  const auto now = Clock::now();
  for (auto& c : incoming) {
    auto it = old.find({c.cluster, c.address});
    if (it != old.end() && it->second != nullptr) {
      std::unique_ptr<Target> t = std::move(it->second);
      old.erase(it);
      // A running probe for a changed target (other path, address...) no longer answers
      // the question being asked: drop it and probe again soon.
      if (t->probe.running() && !SameSpec(t->config, c)) {
        t->probe.Reset();
        t->next_probe = now;
      }
      t->config = std::move(c);
      targets_.push_back(std::move(t));
      continue;
    }
    auto t = std::make_unique<Target>();
    t->config = std::move(c);
    t->healthy = t->config.initially_healthy;
    t->checking_since = std::chrono::system_clock::now();
    region_->Set(t->config.slot, t->healthy);
    // First probe soon (within 10% of the interval, jittered): detection after a start or
    // a config change should not wait a whole interval.
    t->next_probe = now + Jittered(t->config.interval_ms, 0.0, 0.1);
    targets_.push_back(std::move(t));
  }
  // Removed targets: destroying them closes their probe sockets (leaving epoll with them).
  old.clear();
  PublishStates();
}

void HealthChecker::StartProbe(Target* t, Clock::time_point now) {
  t->deadline = now + std::chrono::milliseconds(t->config.timeout_ms);
  if (!t->config.resolve_error.empty()) {
    t->last_result = "resolve: " + t->config.resolve_error;
    t->failures++;
    t->successes = 0;
    Record(t, now);
    return;
  }
  if (!t->probe.Start(t->config.resolved, t->config.spec)) {
    t->last_result = t->probe.reason();
    if (t->probe.ok()) {
      t->successes++;
      t->failures = 0;
    } else {
      t->failures++;
      t->successes = 0;
    }
    Record(t, now);
    return;
  }
  epoll_event ev{};
  ev.events = t->probe.wanted_events();
  ev.data.ptr = t;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, t->probe.fd(), &ev) != 0) {
    t->probe.Fail(std::string("epoll_ctl: ") + std::strerror(errno));
    t->last_result = t->probe.reason();
    t->failures++;
    t->successes = 0;
    Record(t, now);
  }
}

void HealthChecker::OnProbeEvents(Target* t, uint32_t events) {
  if (!t->probe.running()) return;
  const uint32_t before = t->probe.wanted_events();
  if (!t->probe.OnEvents(events)) {
    const uint32_t after = t->probe.wanted_events();
    if (after != before) {
      epoll_event ev{};
      ev.events = after;
      ev.data.ptr = t;
      epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, t->probe.fd(), &ev);
    }
    return;
  }
  t->last_result = t->probe.reason();
  if (t->probe.ok()) {
    t->successes++;
    t->failures = 0;
  } else {
    t->failures++;
    t->successes = 0;
  }
  Record(t, Clock::now());
}

void HealthChecker::OnTimers(Clock::time_point now) {
  for (auto& up : targets_) {
    Target* t = up.get();
    if (t->probe.running()) {
      if (now < t->deadline) continue;
      t->probe.Fail("timeout after " + std::to_string(t->config.timeout_ms) + " ms");
      t->last_result = t->probe.reason();
      t->failures++;
      t->successes = 0;
      Record(t, now);
    } else if (now >= t->next_probe) {
      StartProbe(t, now);
    }
  }
}

// Decides a transition from the counters the caller just updated, and schedules the next
// probe an interval (±10%) from now.
void HealthChecker::Record(Target* t, Clock::time_point now) {
  // Every caller has just counted this probe: a success reset the failures, and the reverse.
  t->last_ok = t->failures == 0;
  t->last_check = std::chrono::system_clock::now();
  t->probe.Reset();
  t->next_probe = now + Jittered(t->config.interval_ms, 0.9, 1.1);
  const CheckTarget& c = t->config;
  bool changed = false;
  std::string reason;
  if (!t->healthy && t->successes >= c.healthy_threshold) {
    t->healthy = true;
    changed = true;
    reason = t->last_result + " (" + std::to_string(t->successes) + " consecutive successes)";
  } else if (t->healthy && t->failures >= c.unhealthy_threshold) {
    t->healthy = false;
    changed = true;
    reason = t->last_result + " (" + std::to_string(t->failures) + " consecutive failures)";
  }
  if (changed) {
    t->last_transition = t->last_check;
    region_->Set(c.slot, t->healthy);
    if (t->healthy) {
      ZLOG_INFO("health: cluster \"%s\" endpoint %s is now healthy: %s", c.cluster.c_str(),
                c.address.c_str(), reason.c_str());
    } else {
      ZLOG_WARN("health: cluster \"%s\" endpoint %s is now unhealthy: %s", c.cluster.c_str(),
                c.address.c_str(), reason.c_str());
    }
  }
  // States() readers see every probe's result, not only transitions; published before
  // the transition callback so whoever it wakes (WatchHealth, tests) sees the new state.
  PublishStates();
  if (changed && on_transition_) on_transition_(c.cluster, c.address, t->healthy, reason);
}

HealthChecker::Clock::time_point HealthChecker::NextDeadline() const {
  auto next = Clock::time_point::max();
  for (const auto& t : targets_) {
    next = std::min(next, t->probe.running() ? t->deadline : t->next_probe);
  }
  return next;
}

void HealthChecker::PublishStates() {
  std::vector<EndpointHealth> states;
  states.reserve(targets_.size());
  for (const auto& t : targets_) {
    EndpointHealth h;
    h.cluster = t->config.cluster;
    h.address = t->config.address;
    h.slot = t->config.slot;
    h.healthy = t->healthy;
    h.last_result = t->last_result;
    h.last_ok = t->last_ok;
    h.successes = t->successes;
    h.failures = t->failures;
    h.last_check = t->last_check;
    h.last_transition = t->last_transition;
    h.checking_since = t->checking_since;
    states.push_back(std::move(h));
  }
  std::sort(states.begin(), states.end(), [](const EndpointHealth& a, const EndpointHealth& b) {
    return std::tie(a.cluster, a.address) < std::tie(b.cluster, b.address);
  });
  std::lock_guard<std::mutex> lock(mu_);
  states_ = std::move(states);
}

}  // namespace zproxy::health
