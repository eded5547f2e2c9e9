// Fan-out of health transitions to any number of watchers (the Admin API's WatchHealth
// streams, tests). The checker thread publishes; each subscriber has its own bounded queue,
// so a slow or stuck watcher never blocks health checking: when its queue is full the
// oldest event is dropped and counted, and the watcher learns how many it missed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace zproxy::health {

struct HealthEvent {
  std::chrono::system_clock::time_point time;  // when the transition was decided
  std::string cluster;
  std::string address;  // endpoint address as configured
  bool healthy = true;
  std::string reason;  // e.g. "connect: Connection refused (2 consecutive failures)"
};

class HealthEvents;

// One watcher's queue. Thread-safe. Obtained from HealthEvents::Subscribe; stops receiving
// when passed to Unsubscribe or destroyed.
class HealthSubscription {
 public:
  explicit HealthSubscription(size_t capacity) : capacity_(capacity) {}

  // Waits up to `timeout` for the next event. False on timeout or once closed (after
  // Unsubscribe) with nothing left to read.
  bool Next(HealthEvent* event, std::chrono::milliseconds timeout);
  // Events dropped because the queue was full, since the last call (then reset to 0).
  uint64_t TakeDropped();
  // Wakes a blocked Next() for good (e.g. the gRPC call was cancelled).
  void Close();
  bool closed() const;

 private:
  friend class HealthEvents;
  void Push(const HealthEvent& event);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<HealthEvent> queue_;
  uint64_t dropped_ = 0;
  bool closed_ = false;
};

class HealthEvents {
 public:
  static constexpr size_t kDefaultQueue = 1024;

  std::shared_ptr<HealthSubscription> Subscribe(size_t capacity = kDefaultQueue);
  void Unsubscribe(const std::shared_ptr<HealthSubscription>& subscription);
  void Publish(const HealthEvent& event);
  size_t subscribers() const;

 private:
  mutable std::mutex mu_;
  // weak: a subscriber that simply drops its shared_ptr is pruned on the next Publish.
  std::vector<std::weak_ptr<HealthSubscription>> subs_;
};

}  // namespace zproxy::health
