// Owns the data plane child for zproxyd's lifetime: starts it with the bootstrap (current
// config + listen sockets), restarts it with exponential backoff when it dies, and stops
// it on SIGTERM/SIGINT. The listen sockets stay open in zproxyd throughout, so the kernel
// keeps accepting into their backlogs while a new data plane starts.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "controlplane/config_store.h"
#include "controlplane/listen_sockets.h"

namespace zproxy::v1 {
class DataplaneBootstrap;
}

namespace zproxy::controlplane {

// Blocks SIGTERM, SIGINT, SIGHUP and SIGCHLD (Run() reads them from a signalfd) and
// ignores SIGPIPE. Call first thing in main, before any thread exists.
void BlockSupervisorSignals();

class DataplaneSupervisor {
 public:
  using Ms = std::chrono::milliseconds;
  struct Options {
    std::string binary;
    uint32_t workers = 1;
    Ms stop_timeout{15000};  // SIGTERM -> SIGKILL: drain_timeout_ms + 5 s
    Ms min_backoff{100};
    Ms max_backoff{5000};
    // The first data plane dying within this long is a failed start: zproxyd exits 1
    // instead of looping (bad binary, io_uring unavailable, ...).
    Ms startup_grace{1000};
    // A data plane that ran this long resets the backoff to min_backoff.
    Ms stable_after{10000};
    // Called for every data plane start (first, restart, handover) after the listen
    // sockets are in: adds the health region fd and slot table (controlplane/health).
    // Appended fds must stay open; they travel after the listen sockets.
    std::function<void(zproxy::v1::DataplaneBootstrap*, std::vector<int>* fds)> extend_bootstrap;
  };

  DataplaneSupervisor(Options options, const ConfigStore& store,
                      const std::vector<ListenSocket>& sockets);

  // Runs until SIGTERM/SIGINT. Returns the process exit code: 0 after a clean stop, 1 if
  // the data plane failed to start.
  int Run();

 private:
  using Clock = std::chrono::steady_clock;

  bool Start(std::string* error);
  void OnSignal(int signo);
  void Reap();
  void OnChildExit(int status);
  void OnTimers();
  int PollTimeoutMs() const;

  Options options_;
  const ConfigStore& store_;
  const std::vector<ListenSocket>& sockets_;

  pid_t pid_ = -1;
  UniqueFd control_;
  Clock::time_point started_at_;
  bool first_instance_ = true;
  int restarts_ = 0;
  Ms backoff_;
  bool restart_pending_ = false;
  Clock::time_point restart_at_;

  bool stopping_ = false;
  bool kill_sent_ = false;
  Clock::time_point kill_at_;
  int exit_code_ = 0;
  bool done_ = false;
};

}  // namespace zproxy::controlplane
