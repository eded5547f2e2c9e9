// Runs "resync on Hello" off the gRPC thread that received the Hello: a push waits for the
// data plane's answer, which arrives on that very thread, so it must happen elsewhere.
// One worker thread; requests run in arrival order.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace zproxy::sync {

class Resyncer {
 public:
  // `fn(pid, version)` runs on the worker thread for each Post.
  explicit Resyncer(std::function<void(pid_t, uint64_t)> fn);
  ~Resyncer() { Stop(); }
  Resyncer(const Resyncer&) = delete;
  Resyncer& operator=(const Resyncer&) = delete;

  // Never blocks.
  void Post(pid_t pid, uint64_t version);
  // Drops what is queued, waits for the running one, joins. Idempotent.
  void Stop();

 private:
  std::function<void(pid_t, uint64_t)> fn_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<pid_t, uint64_t>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace zproxy::sync
