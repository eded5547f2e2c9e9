#include "controlplane/reload/reloader.h"

#include "common/log.h"

namespace zproxy::reload {

Reloader::Reloader(state::ConfigManager* manager, std::string path, Hooks hooks)
    : manager_(manager), path_(std::move(path)), hooks_(std::move(hooks)) {
  thread_ = std::thread([this] { Run(); });
}

void Reloader::Post() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_ = true;
  }
  cv_.notify_all();
}

void Reloader::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Reloader::Run() {
  pthread_setname_np(pthread_self(), "zp-reload");
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [this] { return pending_ || stop_; });
    if (stop_) return;
    pending_ = false;
    lock.unlock();
    ZLOG_INFO("SIGHUP: reloading %s", path_.c_str());
    if (hooks_.before) hooks_.before();
    ReloadOutcome outcome = ReloadFromFile(*manager_, path_);
    LogReloadOutcome(outcome, path_);
    if (hooks_.after) hooks_.after(outcome);
    lock.lock();
  }
}

}  // namespace zproxy::reload
