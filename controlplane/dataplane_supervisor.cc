#include "controlplane/dataplane_supervisor.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/handoff/handoff.h"
#include "common/log.h"
#include "controlplane/dataplane_process.h"
#include "controlplane/state/config_ops.h"

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
      backoff_(options_.min_backoff),
      wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

bool DataplaneSupervisor::Spawn(const zproxy::v1::Config& config, uint64_t version, pid_t* pid,
                                UniqueFd* control, std::string* error) {
  zproxy::v1::DataplaneBootstrap bootstrap;
  *bootstrap.mutable_config() = config;
  bootstrap.set_config_version(version);
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
  *pid = child.pid;
  if (!handoff::SendBootstrap(child.control.get(), bootstrap, fds, error)) {
    *error = "sending the bootstrap to data plane pid " + std::to_string(*pid) + ": " + *error;
    // Leave the pid set: the exit is reaped (and logged) through SIGCHLD like any other.
    kill(*pid, SIGKILL);
    return false;
  }
  *control = std::move(child.control);
  ZLOG_INFO(
      "data plane started: pid %d, %s, config version %llu, %zu listen sockets, %zu other fds",
      *pid, options_.binary.c_str(), static_cast<unsigned long long>(version), sockets_.size(),
      fds.size() - sockets_.size());
  return true;
}

void DataplaneSupervisor::Adopt(pid_t pid, UniqueFd pidfd, UniqueFd channel, uint64_t version) {
  pid_ = pid;
  adopted_pidfd_ = std::move(pidfd);
  control_ = std::move(channel);
  started_at_ = Clock::now();
  first_instance_ = false;  // it has been serving for a while: never a "failed start"
  running_version_ = version;
  PublishStatus();
}

void DataplaneSupervisor::Signal(pid_t pid, int sig) {
  int pidfd = -1;
  if (pid == pid_ && adopted_pidfd_.valid()) pidfd = adopted_pidfd_.get();
  for (const Draining& d : draining_) {
    if (d.pid == pid && d.pidfd.valid()) pidfd = d.pidfd.get();
  }
  if (pidfd >= 0) {
    syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
  } else {
    kill(pid, sig);
  }
}

void DataplaneSupervisor::CheckDone() {
  if (stopping_ && pid_ <= 0 && new_pid_ <= 0 && draining_.empty()) done_ = true;
}

bool DataplaneSupervisor::Start(std::string* error) {
  ConfigStore::Snapshot snap = store_.Current();
  started_at_ = Clock::now();
  const zproxy::v1::Config view =
      options_.view ? options_.view(*snap.config) : state::DataplaneView(*snap.config);
  bool ok = Spawn(view, snap.version, &pid_, &control_, error);
  if (ok) running_version_ = snap.version;
  PublishStatus();
  return ok;
}

bool DataplaneSupervisor::Handover(const zproxy::v1::Config& config, uint64_t version,
                                   std::string* error, pid_t* old_pid, pid_t* new_pid) {
  HandoverRequest req;
  req.config = config;
  req.version = version;
  std::unique_lock<std::mutex> lock(mu_);
  if (exited_) {
    *error = "zproxyd is exiting";
    return false;
  }
  if (pending_ != nullptr) {
    *error = "another handover is in progress";
    return false;
  }
  pending_ = &req;
  uint64_t one = 1;
  if (write(wake_.get(), &one, sizeof(one)) != sizeof(one)) {
    pending_ = nullptr;
    *error = std::string("cannot wake the supervisor: ") + std::strerror(errno);
    return false;
  }
  cv_.wait(lock, [&] { return req.done; });
  *error = req.error;
  if (old_pid != nullptr) *old_pid = req.old_pid;
  if (new_pid != nullptr) *new_pid = req.new_pid;
  return req.ok;
}

DataplaneSupervisor::Status DataplaneSupervisor::GetStatus() const {
  std::lock_guard<std::mutex> lock(mu_);
  Status s = status_;
  if (s.pid > 0) s.uptime_ms = ToMs(Clock::now() - started_at_);
  return s;
}

void DataplaneSupervisor::PublishStatus() {
  std::lock_guard<std::mutex> lock(mu_);
  status_.pid = pid_;
  status_.restarts = restarts_;
  status_.handovers = handovers_;
  status_.version = running_version_;
  status_.adopted = pid_ > 0 && adopted_pidfd_.valid();
  status_.stopping = stopping_;
}

void DataplaneSupervisor::OnWake() {
  uint64_t n;
  ssize_t ignored = read(wake_.get(), &n, sizeof(n));
  (void)ignored;
  if (active_ != nullptr) return;  // picked up when the current one finishes
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_ = pending_;
  }
  if (active_ == nullptr) return;
  if (stopping_) {
    FinishHandover(false, "zproxyd is shutting down");
    return;
  }
  std::string error;
  new_started_at_ = Clock::now();
  if (!Spawn(active_->config, active_->version, &new_pid_, &new_control_, &error)) {
    FinishHandover(false, error);  // a spawned-then-killed child is reaped via SIGCHLD
    return;
  }
  ready_deadline_ = new_started_at_ + options_.ready_timeout;
}

void DataplaneSupervisor::OnNewControlReadable() {
  char byte = 0;
  ssize_t n = recv(new_control_.get(), &byte, 1, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n != 1 || byte != 'R') {
    // EOF: it is exiting; its exit status arrives through SIGCHLD (and fails the handover).
    new_control_.reset();
    return;
  }
  const pid_t old = pid_;
  pid_ = new_pid_;
  new_pid_ = -1;
  control_ = std::move(new_control_);
  started_at_ = Clock::now();
  first_instance_ = false;
  restart_pending_ = false;  // a crashed data plane being replaced needs no restart
  running_version_ = active_->version;
  ++handovers_;
  const long long took = ToMs(started_at_ - new_started_at_);
  if (old > 0) {
    // An adopted old data plane is watched through its pidfd while it drains.
    draining_.push_back(
        Draining{old, Clock::now() + options_.stop_timeout, false, std::move(adopted_pidfd_)});
    Signal(old, SIGTERM);
    ZLOG_INFO(
        "handover: data plane pid %d serves config version %llu (ready after %lld ms); "
        "old pid %d drains",
        pid_, static_cast<unsigned long long>(running_version_), took, old);
  } else {
    ZLOG_INFO("handover: data plane pid %d serves config version %llu (ready after %lld ms)", pid_,
              static_cast<unsigned long long>(running_version_), took);
  }
  active_->old_pid = old;
  active_->new_pid = pid_;
  FinishHandover(true, "");
}

void DataplaneSupervisor::FinishHandover(bool ok, std::string error) {
  PublishStatus();
  std::lock_guard<std::mutex> lock(mu_);
  active_->ok = ok;
  active_->error = std::move(error);
  active_->done = true;
  pending_ = nullptr;
  active_ = nullptr;
  cv_.notify_all();
}

int DataplaneSupervisor::Run() {
  sigset_t set = SupervisorSignals();
  UniqueFd sfd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sfd.valid()) {
    ZLOG_ERROR("signalfd: %s", std::strerror(errno));
    return 1;
  }
  std::string error;
  if (pid_ <= 0 && !Start(&error)) {  // an adopted data plane serves already
    ZLOG_ERROR("data plane failed to start: %s", error.c_str());
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    done_ = true;
    exit_code_ = 1;
  }
  std::vector<pollfd> p;
  while (!done_) {
    // signals, handover wake-ups, the new data plane's readiness, an adopted data plane's
    // exit, then the exits of adopted data planes that drain.
    p.assign({{sfd.get(), POLLIN, 0},
              {wake_.get(), POLLIN, 0},
              {new_control_.valid() ? new_control_.get() : -1, POLLIN, 0},
              {adopted_pidfd_.valid() ? adopted_pidfd_.get() : -1, POLLIN, 0}});
    for (const Draining& d : draining_)
      p.push_back({d.pidfd.valid() ? d.pidfd.get() : -1, POLLIN, 0});
    int r = poll(p.data(), p.size(), PollTimeoutMs());
    if (r < 0 && errno != EINTR) {
      ZLOG_ERROR("poll: %s", std::strerror(errno));
      return 1;
    }
    if (r > 0 && p[2].revents != 0 && new_control_.valid()) OnNewControlReadable();
    if (r > 0 && p[3].revents != 0 && adopted_pidfd_.valid()) OnAdoptedExit();
    for (size_t i = p.size(); r > 0 && i-- > 4;) {
      // Indexes shift as entries go: walk backwards; draining_ only shrinks here.
      const size_t d = i - 4;
      if (p[i].revents != 0 && d < draining_.size() && draining_[d].pidfd.valid()) {
        OnDrainedExit(d, "exited (adopted: no exit status)");
      }
    }
    CheckDone();
    signalfd_siginfo info;
    while (read(sfd.get(), &info, sizeof(info)) == sizeof(info))
      OnSignal(static_cast<int>(info.ssi_signo));
    if (r > 0 && (p[1].revents & POLLIN)) OnWake();
    if (!done_) OnTimers();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    exited_ = true;  // later Handover() calls fail at once
    if (active_ == nullptr) active_ = pending_;
  }
  if (active_ != nullptr) FinishHandover(false, "zproxyd is exiting");
  return exit_code_;
}

int DataplaneSupervisor::PollTimeoutMs() const {
  Clock::time_point next = Clock::time_point::max();
  if (restart_pending_) next = std::min(next, restart_at_);
  if (stopping_ && !kill_sent_ && pid_ > 0) next = std::min(next, kill_at_);
  if (new_pid_ > 0 && new_control_.valid()) next = std::min(next, ready_deadline_);
  for (const Draining& d : draining_) {
    if (!d.kill_sent) next = std::min(next, d.kill_at);
  }
  if (next == Clock::time_point::max()) return -1;
  return static_cast<int>(std::max<long long>(0, ToMs(next - Clock::now()) + 1));
}

void DataplaneSupervisor::OnSignal(int signo) {
  switch (signo) {
    case SIGCHLD:
      Reap();
      return;
    case SIGHUP:
      if (stopping_) {
        ZLOG_INFO("SIGHUP ignored: zproxyd is stopping");
      } else if (options_.on_sighup) {
        options_.on_sighup();
      } else {
        ZLOG_WARN("SIGHUP ignored: no reload handler");
      }
      return;
    case SIGTERM:
    case SIGINT:
      if (stopping_) {
        ZLOG_INFO("%s again: still waiting for the data plane to drain", strsignal(signo));
        return;
      }
      stopping_ = true;
      restart_pending_ = false;
      PublishStatus();  // /ready answers 503 from now on
      if (options_.on_stopping) options_.on_stopping();
      if (new_pid_ > 0) kill(new_pid_, SIGTERM);  // its handover fails when it exits
      if (pid_ <= 0 && new_pid_ <= 0 && draining_.empty()) {
        ZLOG_INFO("%s: no data plane running, exiting", strsignal(signo));
        done_ = true;
        return;
      }
      ZLOG_INFO("%s: stopping data plane pid %d (SIGKILL after %lld ms)", strsignal(signo), pid_,
                static_cast<long long>(options_.stop_timeout.count()));
      if (pid_ > 0) Signal(pid_, SIGTERM);
      kill_at_ = Clock::now() + options_.stop_timeout;
      return;
  }
}

void DataplaneSupervisor::Reap() {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    if (pid == pid_) {
      OnChildExit(status);
    } else if (pid == new_pid_) {
      new_pid_ = -1;
      new_control_.reset();
      std::string why = "new data plane pid " + std::to_string(pid) + " " +
                        DescribeWaitStatus(status) + " before it was ready";
      ZLOG_WARN("handover failed: %s; pid %d keeps serving", why.c_str(), pid_);
      if (active_ != nullptr) FinishHandover(false, why);
    } else {
      for (size_t i = 0; i < draining_.size(); ++i) {
        if (draining_[i].pid != pid) continue;
        OnDrainedExit(i, DescribeWaitStatus(status));
        break;
      }
    }
    CheckDone();
  }
}

void DataplaneSupervisor::OnDrainedExit(size_t index, const std::string& how) {
  ZLOG_INFO("old data plane pid %d %s (drained)", draining_[index].pid, how.c_str());
  draining_.erase(draining_.begin() + static_cast<long>(index));
}

void DataplaneSupervisor::OnChildExit(int status) {
  const bool killed_from_outside = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  OnDataplaneExit(pid_, DescribeWaitStatus(status), !killed_from_outside);
}

void DataplaneSupervisor::OnAdoptedExit() {
  // Not our child: no exit status (its reaper is whoever inherited it from the dead zproxyd).
  const pid_t pid = pid_;
  adopted_pidfd_.reset();
  OnDataplaneExit(pid, "exited (adopted: no exit status)", /*failed_start_possible=*/false);
}

void DataplaneSupervisor::OnDataplaneExit(pid_t pid, const std::string& how,
                                          bool failed_start_possible) {
  const auto uptime = Clock::now() - started_at_;
  pid_ = -1;
  control_.reset();
  if (stopping_) {
    ZLOG_INFO("data plane pid %d %s; exiting", pid, how.c_str());
    return;  // the loop ends once no data plane is left
  }
  if (first_instance_ && uptime < options_.startup_grace && failed_start_possible) {
    ZLOG_ERROR("data plane failed to start: pid %d %s after %lld ms", pid, how.c_str(),
               ToMs(uptime));
    exit_code_ = 1;
    done_ = true;
    PublishStatus();
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
  PublishStatus();
}

void DataplaneSupervisor::OnTimers() {
  const auto now = Clock::now();
  if (new_pid_ > 0 && new_control_.valid() && now >= ready_deadline_) {
    ZLOG_WARN("handover: new data plane pid %d not ready within %lld ms; killing it", new_pid_,
              static_cast<long long>(options_.ready_timeout.count()));
    kill(new_pid_, SIGKILL);
    new_control_.reset();  // the handover fails when it is reaped
  }
  for (Draining& d : draining_) {
    if (!d.kill_sent && now >= d.kill_at) {
      ZLOG_WARN("old data plane pid %d still draining after %lld ms; sending SIGKILL", d.pid,
                static_cast<long long>(options_.stop_timeout.count()));
      Signal(d.pid, SIGKILL);
      d.kill_sent = true;
    }
  }
  if (stopping_ && !kill_sent_ && pid_ > 0 && now >= kill_at_) {
    ZLOG_WARN("data plane pid %d did not exit within %lld ms of SIGTERM; sending SIGKILL", pid_,
              static_cast<long long>(options_.stop_timeout.count()));
    Signal(pid_, SIGKILL);
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
