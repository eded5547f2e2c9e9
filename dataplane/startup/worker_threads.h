// The worker threads and the start-up handshake with them. Each worker creates its
// io_uring ring on its own thread (SINGLE_ISSUER) and then drops that thread's privileges
// (capabilities are per thread; dataplane/privileges/drop.h says why the ring comes
// first). Start() waits for every worker, so a failure (io_uring blocked, say) is
// reported before anything is served; the workers then wait for Release(), which the
// main thread gives only once /metrics is bound and its own privileges are dropped.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/privileges/drop.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane::startup {

class WorkerThreads {
 public:
  // Starts one thread per worker in `pool` (named zp-worker-N) and waits until each has
  // created its ring and dropped its thread's privileges with `drop`. On failure every
  // thread is joined, the first worker's error is logged ("worker N: ...") and false is
  // returned. `pool` must outlive the threads.
  bool Start(const std::vector<std::unique_ptr<Worker>>& pool, const privileges::Options& drop);

  // Lets the workers run their event loops.
  void Release();

  // Tells the waiting workers to exit without serving, and joins them.
  void Abort();

  // Joins the threads (after every Worker::Stop, or after Abort).
  void Join();

 private:
  std::vector<std::thread> threads_;
  std::vector<std::string> init_errors_;
  std::atomic<uint32_t> ready_{0};
  std::atomic<bool> failed_{false};
  std::atomic<bool> go_{false};
};

}  // namespace zproxy::dataplane::startup
