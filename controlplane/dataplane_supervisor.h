// Owns the data plane child for zproxyd's lifetime: starts it with the bootstrap (current
// config + listen sockets), restarts it with exponential backoff when it dies, and stops
// it on SIGTERM/SIGINT. The listen sockets stay open in zproxyd throughout, so the kernel
// keeps accepting into their backlogs while a new data plane starts.
//
// Adoption: a data plane left serving by a zproxyd that died is not our child. Adopt()
// makes it the current data plane: its exit is seen through a pidfd (poll), not SIGCHLD,
// and is handled exactly like a child's (restart with backoff on the same sockets); it is
// stopped on SIGTERM and drained on handover like a child.
//
// Graceful handover (config changes through the Admin API, `zproxyctl dataplane restart`):
// a NEW data plane is started on the same listen sockets with the new config; once it
// reports readiness (one byte 'R' on its control socket, written after its workers run)
// the old one gets SIGTERM and drains. If the new one dies or is not ready within
// `ready_timeout`, it is killed and the old one keeps serving.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
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
    // A handover's new data plane must report readiness within this long.
    Ms ready_timeout{10000};
    // SIGHUP, on the supervisor thread: must not block (a reload may need a handover,
    // which this thread carries out). Unset: SIGHUP is logged and ignored.
    std::function<void()> on_sighup;
    // SIGTERM/SIGINT, once, as the drain starts (systemd STOPPING=1). Must not block.
    std::function<void()> on_stopping;
    // What a data plane (first start, crash restart) is given for the current config.
    // Unset: state::DataplaneView.
    std::function<zproxy::v1::Config(const zproxy::v1::Config&)> view;
  };

  struct Status {
    pid_t pid = -1;
    long long uptime_ms = 0;
    int restarts = 0;   // after crashes
    int handovers = 0;  // graceful
    uint64_t version = 0;
    bool adopted = false;   // pid is not our child (Adopt)
    bool stopping = false;  // SIGTERM/SIGINT seen: draining, then exiting
  };

  DataplaneSupervisor(Options options, const ConfigStore& store,
                      const std::vector<ListenSocket>& sockets);

  // Makes `pid` (not our child; `pidfd` open on it) the current data plane serving
  // `version`, instead of starting one. `channel` is kept open for its lifetime like a
  // child's control socket. Call before Run(), which then starts nothing.
  void Adopt(pid_t pid, UniqueFd pidfd, UniqueFd channel, uint64_t version);

  // Runs until SIGTERM/SIGINT. Returns the process exit code: 0 after a clean stop, 1 if
  // the data plane failed to start.
  int Run();

  // Thread-safe, blocking: starts a data plane with `config` (already the data plane's
  // view) as `version`, waits for it to be ready, then drains the old one. Returns false
  // with the reason if the new one failed (the old one keeps serving).
  bool Handover(const zproxy::v1::Config& config, uint64_t version, std::string* error,
                pid_t* old_pid = nullptr, pid_t* new_pid = nullptr);

  Status GetStatus() const;

 private:
  using Clock = std::chrono::steady_clock;

  struct HandoverRequest {
    zproxy::v1::Config config;
    uint64_t version = 0;
    bool done = false;
    bool ok = false;
    std::string error;
    pid_t old_pid = -1;
    pid_t new_pid = -1;
  };
  struct Draining {
    pid_t pid;
    Clock::time_point kill_at;
    bool kill_sent = false;
    UniqueFd pidfd;  // valid for an adopted (non-child) data plane: poll for its exit
  };

  bool Start(std::string* error);
  bool Spawn(const zproxy::v1::Config& config, uint64_t version, pid_t* pid, UniqueFd* control,
             std::string* error);
  void OnWake();
  void OnNewControlReadable();
  void FinishHandover(bool ok, std::string error);
  void PublishStatus();
  void OnSignal(int signo);
  void Reap();
  void OnChildExit(int status);
  // The current data plane exited; `how` describes it. Restart with backoff unless stopping.
  void OnDataplaneExit(pid_t pid, const std::string& how, bool failed_start_possible);
  void OnAdoptedExit();
  void OnDrainedExit(size_t index, const std::string& how);
  // kill(2), or pidfd_send_signal(2) for an adopted data plane (no pid reuse race).
  void Signal(pid_t pid, int sig);
  void CheckDone();
  void OnTimers();
  int PollTimeoutMs() const;

  Options options_;
  const ConfigStore& store_;
  const std::vector<ListenSocket>& sockets_;

  pid_t pid_ = -1;
  UniqueFd control_;
  UniqueFd adopted_pidfd_;  // valid while pid_ is an adopted (non-child) data plane
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

  // Handover state (supervisor thread), requests from other threads under mu_.
  UniqueFd wake_;  // eventfd
  pid_t new_pid_ = -1;
  UniqueFd new_control_;
  Clock::time_point new_started_at_;
  Clock::time_point ready_deadline_;
  std::vector<Draining> draining_;
  int handovers_ = 0;
  uint64_t running_version_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  HandoverRequest* pending_ = nullptr;  // waiting to start
  HandoverRequest* active_ = nullptr;   // being started (supervisor thread only)
  Status status_;                       // for GetStatus
  bool exited_ = false;                 // Run() returned
};

}  // namespace zproxy::controlplane
