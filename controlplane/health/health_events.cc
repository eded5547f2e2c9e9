#include "controlplane/health/health_events.h"

#include <algorithm>
#include <utility>

namespace zproxy::health {

bool HealthSubscription::Next(HealthEvent* event, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !queue_.empty() || closed_; });
  if (queue_.empty()) return false;
  *event = std::move(queue_.front());
  queue_.pop_front();
  return true;
}

uint64_t HealthSubscription::TakeDropped() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(dropped_, 0);
}

void HealthSubscription::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool HealthSubscription::closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_;
}

void HealthSubscription::Push(const HealthEvent& event) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    if (queue_.size() >= capacity_) {
      queue_.pop_front();
      ++dropped_;
    }
    queue_.push_back(event);
  }
  cv_.notify_one();
}

std::shared_ptr<HealthSubscription> HealthEvents::Subscribe(size_t capacity) {
  auto sub = std::make_shared<HealthSubscription>(std::max<size_t>(1, capacity));
  std::lock_guard<std::mutex> lock(mu_);
  subs_.push_back(sub);
  return sub;
}

void HealthEvents::Unsubscribe(const std::shared_ptr<HealthSubscription>& subscription) {
  if (subscription == nullptr) return;
  subscription->Close();
  std::lock_guard<std::mutex> lock(mu_);
  subs_.erase(std::remove_if(subs_.begin(), subs_.end(),
                             [&](const std::weak_ptr<HealthSubscription>& w) {
                               auto s = w.lock();
                               return s == nullptr || s == subscription;
                             }),
              subs_.end());
}

void HealthEvents::Publish(const HealthEvent& event) {
  std::vector<std::shared_ptr<HealthSubscription>> live;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = subs_.begin();
    for (auto& w : subs_) {
      if (auto s = w.lock()) {
        live.push_back(std::move(s));
        *it++ = w;
      }
    }
    subs_.erase(it, subs_.end());
  }
  // Outside our lock: each Push takes only that subscriber's lock.
  for (auto& s : live) s->Push(event);
}

size_t HealthEvents::subscribers() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& w : subs_) n += w.expired() ? 0 : 1;
  return n;
}

}  // namespace zproxy::health
