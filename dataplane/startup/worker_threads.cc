#include "dataplane/startup/worker_threads.h"

#include <pthread.h>

#include <cstdio>

#include "common/log.h"

namespace zproxy::dataplane::startup {

bool WorkerThreads::Start(const std::vector<std::unique_ptr<Worker>>& pool,
                          const privileges::Options& drop) {
  const uint32_t workers = static_cast<uint32_t>(pool.size());
  init_errors_.assign(workers, {});
  for (uint32_t w = 0; w < workers; w++) {
    threads_.emplace_back([this, &pool, drop, w] {
      char name[16];
      snprintf(name, sizeof(name), "zp-worker-%u", w);
      pthread_setname_np(pthread_self(), name);
      privileges::Outcome unused;
      privileges::Options worker_drop = drop;
      worker_drop.is_worker = true;
      if (!pool[w]->Init(&init_errors_[w]) ||
          !privileges::Drop(worker_drop, &unused, &init_errors_[w])) {
        failed_.store(true);
        ready_.fetch_add(1);
        return;
      }
      ready_.fetch_add(1);
      while (!go_.load() && !failed_.load()) std::this_thread::yield();
      if (failed_.load()) return;
      pool[w]->Run();
    });
  }
  while (ready_.load() < workers) std::this_thread::yield();
  if (!failed_.load()) return true;
  Join();
  for (uint32_t w = 0; w < workers; w++) {
    if (!init_errors_[w].empty()) {
      ZLOG_ERROR("worker %u: %s", w, init_errors_[w].c_str());
      break;
    }
  }
  return false;
}

void WorkerThreads::Release() { go_.store(true); }

void WorkerThreads::Abort() {
  go_.store(true);
  failed_.store(true);
  Join();
}

void WorkerThreads::Join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

}  // namespace zproxy::dataplane::startup
