#include "controlplane/sync/resyncer.h"

namespace zproxy::sync {

Resyncer::Resyncer(std::function<void(pid_t, uint64_t)> fn) : fn_(std::move(fn)) {
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      auto [pid, version] = queue_.front();
      queue_.pop_front();
      lock.unlock();
      fn_(pid, version);
      lock.lock();
    }
  });
}

void Resyncer::Post(pid_t pid, uint64_t version) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    queue_.emplace_back(pid, version);
  }
  cv_.notify_one();
}

void Resyncer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

}  // namespace zproxy::sync
