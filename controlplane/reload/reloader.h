// Runs SIGHUP reloads off the supervisor thread: a reload may hand over to a new data
// plane, which the supervisor thread itself carries out, so it must never wait on it.
// Signals that arrive while a reload runs are folded into one more reload afterwards.
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "controlplane/reload/reload_file.h"
#include "controlplane/state/config_manager.h"

namespace zproxy::reload {

class Reloader {
 public:
  struct Hooks {
    std::function<void()> before;                     // e.g. systemd RELOADING=1
    std::function<void(const ReloadOutcome&)> after;  // e.g. systemd READY=1
  };
  Reloader(state::ConfigManager* manager, std::string path, Hooks hooks);
  ~Reloader() { Stop(); }
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // Never blocks.
  void Post();
  // Waits for a reload in progress; drops a pending one. Idempotent.
  void Stop();

 private:
  void Run();

  state::ConfigManager* const manager_;
  const std::string path_;
  const Hooks hooks_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool pending_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace zproxy::reload
