#include "controlplane/notify/service_notifier.h"

#include <time.h>

#include <chrono>

#include "common/log.h"

namespace zproxy::notify {
namespace {

// RELOADING=1 carries the CLOCK_MONOTONIC time (systemd >= 253 requires it, older ones
// ignore it).
std::string MonotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::to_string(static_cast<long long>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000);
}

}  // namespace

ServiceNotifier::ServiceNotifier(SdNotify sd, std::function<probes::Readiness()> ready,
                                 std::function<bool(std::string*)> live)
    : sd_(std::move(sd)), ready_(std::move(ready)), live_(std::move(live)) {}

void ServiceNotifier::Start() {
  if (!sd_.enabled()) return;
  if (!sd_.note().empty()) ZLOG_INFO("%s", sd_.note().c_str());
  thread_ = std::thread([this] { Run(); });
}

void ServiceNotifier::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ServiceNotifier::Send(const std::string& state) {
  std::string error;
  if (!sd_.Send(state, &error)) ZLOG_WARN("%s (message %s)", error.c_str(), state.c_str());
}

void ServiceNotifier::Stopping() { Send("STOPPING=1\nSTATUS=draining"); }

void ServiceNotifier::Reloading() { Send("RELOADING=1\nMONOTONIC_USEC=" + MonotonicUsec()); }

void ServiceNotifier::Reloaded(const std::string& status) { Send("READY=1\nSTATUS=" + status); }

void ServiceNotifier::Run() {
  pthread_setname_np(pthread_self(), "zp-notify");
  using namespace std::chrono;
  const auto ping_every = duration_cast<milliseconds>(sd_.watchdog() / 2);
  auto next_ping = steady_clock::now();
  bool ready_sent = false;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    if (!ready_sent) {
      probes::Readiness r = ready_();
      if (r.ready) {
        Send("READY=1\nSTATUS=" + r.reason);
        ZLOG_INFO("systemd: READY=1 (%s)", r.reason.c_str());
        ready_sent = true;
      }
    }
    if (ping_every.count() > 0 && steady_clock::now() >= next_ping) {
      std::string why;
      if (live_(&why)) {
        Send("WATCHDOG=1");
      } else {
        ZLOG_WARN("systemd watchdog not pinged: %s", why.c_str());
      }
      next_ping = steady_clock::now() + ping_every;
    }
    lock.lock();
    // Readiness is polled every 20 ms until sent; afterwards only the watchdog wakes us.
    auto wait = ready_sent ? (ping_every.count() > 0 ? next_ping - steady_clock::now()
                                                     : steady_clock::duration(hours(1)))
                           : steady_clock::duration(milliseconds(20));
    cv_.wait_for(lock, wait, [this] { return stop_; });
  }
}

}  // namespace zproxy::notify
