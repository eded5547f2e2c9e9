#include "controlplane/dataplane_supervisor.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "controlplane/dataplane_process.h"
#include "dataplane/bootstrap/handoff.h"

namespace zproxy::controlplane {
namespace {

sigset_t SupervisorSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&set, s);
  return set;
}

long long ToMs(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace

void BlockSupervisorSignals() {
  sigset_t set = SupervisorSignals();
  sigprocmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a dead data plane must be an EPIPE, not our death
}

DataplaneSupervisor::DataplaneSupervisor(Options options, const ConfigStore& store,
                                         const std::vector<ListenSocket>& sockets)
    : options_(std::move(options)),
      store_(store),
      sockets_(sockets),
      backoff_(options_.min_backoff) {}

bool DataplaneSupervisor::Start(std::string* error) {
  ConfigStore::Snapshot snap = store_.Current();
  zproxy::v1::DataplaneBootstrap bootstrap;
  *bootstrap.mutable_config() = *snap.config;
  bootstrap.set_config_version(snap.version);
  bootstrap.set_workers(options_.workers);
  std::vector<int> fds;
  for (const ListenSocket& s : sockets_) {
    auto* entry = bootstrap.add_sockets();
    entry->set_listener(s.listener);
    entry->set_worker(s.worker);
    fds.push_back(s.fd.get());
  }
  if (options_.extend_bootstrap) options_.extend_bootstrap(&bootstrap, &fds);

  DataplaneProcess child;
  if (!SpawnDataplane(options_.binary, &child, error)) return false;
  // A child that neither reads nor dies must not wedge the supervisor.
  timeval tv{10, 0};
  setsockopt(child.control.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  pid_ = child.pid;
  started_at_ = Clock::now();
  if (!bootstrap::SendBootstrap(child.control.get(), bootstrap, fds, error)) {
    *error = "sending the bootstrap to data plane pid " + std::to_string(pid_) + ": " + *error;
    // Leave pid_ set: the exit is reaped (and logged) through SIGCHLD like any other.
    kill(pid_, SIGKILL);
    return false;
  }
  control_ = std::move(child.control);
  ZLOG_INFO("data plane started: pid %d, %s, config version %llu, %zu listen sockets", pid_,
            options_.binary.c_str(), static_cast<unsigned long long>(snap.version), fds.size());
  return true;
}

int DataplaneSupervisor::Run() {
  sigset_t set = SupervisorSignals();
  UniqueFd sfd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sfd.valid()) {
    ZLOG_ERROR("signalfd: %s", std::strerror(errno));
    return 1;
  }
  std::string error;
  if (!Start(&error)) {
    ZLOG_ERROR("data plane failed to start: %s", error.c_str());
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    return 1;
  }
  while (!done_) {
    pollfd p{sfd.get(), POLLIN, 0};
    int r = poll(&p, 1, PollTimeoutMs());
    if (r < 0 && errno != EINTR) {
      ZLOG_ERROR("poll: %s", std::strerror(errno));
      return 1;
    }
    signalfd_siginfo info;
    while (read(sfd.get(), &info, sizeof(info)) == sizeof(info))
      OnSignal(static_cast<int>(info.ssi_signo));
    if (!done_) OnTimers();
  }
  return exit_code_;
}

int DataplaneSupervisor::PollTimeoutMs() const {
  Clock::time_point next = Clock::time_point::max();
  if (restart_pending_) next = std::min(next, restart_at_);
  if (stopping_ && !kill_sent_ && pid_ > 0) next = std::min(next, kill_at_);
  if (next == Clock::time_point::max()) return -1;
  return static_cast<int>(std::max<long long>(0, ToMs(next - Clock::now()) + 1));
}

void DataplaneSupervisor::OnSignal(int signo) {
  switch (signo) {
    case SIGCHLD:
      Reap();
      return;
    case SIGHUP:
      ZLOG_WARN("SIGHUP ignored: reload via the Admin API is a later issue");
      return;
    case SIGTERM:
    case SIGINT:
      if (stopping_) {
        ZLOG_INFO("%s again: still waiting for the data plane to drain", strsignal(signo));
        return;
      }
      stopping_ = true;
      restart_pending_ = false;
      if (pid_ <= 0) {
        ZLOG_INFO("%s: no data plane running, exiting", strsignal(signo));
        done_ = true;
        return;
      }
      ZLOG_INFO("%s: stopping data plane pid %d (SIGKILL after %lld ms)", strsignal(signo), pid_,
                static_cast<long long>(options_.stop_timeout.count()));
      kill(pid_, SIGTERM);
      kill_at_ = Clock::now() + options_.stop_timeout;
      return;
  }
}

void DataplaneSupervisor::Reap() {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    if (pid == pid_) OnChildExit(status);
  }
}

void DataplaneSupervisor::OnChildExit(int status) {
  const pid_t pid = pid_;
  const auto uptime = Clock::now() - started_at_;
  pid_ = -1;
  control_.reset();
  const std::string how = DescribeWaitStatus(status);
  if (stopping_) {
    ZLOG_INFO("data plane pid %d %s; exiting", pid, how.c_str());
    done_ = true;
    return;
  }
  const bool killed_from_outside = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (first_instance_ && uptime < options_.startup_grace && !killed_from_outside) {
    ZLOG_ERROR("data plane failed to start: pid %d %s after %lld ms", pid, how.c_str(),
               ToMs(uptime));
    exit_code_ = 1;
    done_ = true;
    return;
  }
  first_instance_ = false;
  if (uptime >= options_.stable_after) backoff_ = options_.min_backoff;
  ++restarts_;
  ZLOG_WARN("data plane pid %d %s after %lld ms; restart #%d in %lld ms (listen sockets stay open)",
            pid, how.c_str(), ToMs(uptime), restarts_, static_cast<long long>(backoff_.count()));
  restart_pending_ = true;
  restart_at_ = Clock::now() + backoff_;
  backoff_ = std::min(backoff_ * 2, options_.max_backoff);
}

void DataplaneSupervisor::OnTimers() {
  const auto now = Clock::now();
  if (stopping_ && !kill_sent_ && pid_ > 0 && now >= kill_at_) {
    ZLOG_WARN("data plane pid %d did not exit within %lld ms of SIGTERM; sending SIGKILL", pid_,
              static_cast<long long>(options_.stop_timeout.count()));
    kill(pid_, SIGKILL);
    kill_sent_ = true;
  }
  if (restart_pending_ && !stopping_ && now >= restart_at_) {
    restart_pending_ = false;
    std::string error;
    if (!Start(&error)) {
      ZLOG_ERROR("data plane restart #%d failed: %s", restarts_, error.c_str());
      if (pid_ <= 0) {  // nothing to reap: schedule the next attempt here
        restart_pending_ = true;
        restart_at_ = Clock::now() + backoff_;
        backoff_ = std::min(backoff_ * 2, options_.max_backoff);
      }
    }
  }
}

}  // namespace zproxy::controlplane
