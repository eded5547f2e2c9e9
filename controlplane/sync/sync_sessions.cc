#include "controlplane/sync/sync_sessions.h"

#include <algorithm>

namespace zproxy::sync {

using Clock = std::chrono::steady_clock;

struct SessionRegistry::Session {
  pid_t pid = -1;
  uint64_t hello_version = 0;
  uint64_t serving_version = 0;  // hello_version, then the version of each ACK
  zproxy::v1::Hello hello;
  WriteFn write;
  bool gone = false;
  // The push in flight (at most one per session).
  uint64_t awaiting = 0;
  bool answered = false;
  PushOutcome outcome;
  // Latest stats frame.
  std::string stats_text;
  uint64_t stats_version = 0;
  Clock::time_point stats_at;
  bool has_stats = false;
};

const char* PushOutcomeName(PushOutcome::Kind kind) {
  switch (kind) {
    case PushOutcome::kAck:
      return "ACK";
    case PushOutcome::kRejected:
      return "NACK";
    case PushOutcome::kNeedsRestart:
      return "NACK (needs restart)";
    case PushOutcome::kNoStream:
      return "no stream";
    case PushOutcome::kTimeout:
      return "timeout";
  }
  return "?";
}

std::shared_ptr<SessionRegistry::Session> SessionRegistry::Add(const zproxy::v1::Hello& hello,
                                                               WriteFn write) {
  auto s = std::make_shared<Session>();
  s->pid = static_cast<pid_t>(hello.pid());
  s->hello_version = hello.config_version();
  s->serving_version = hello.config_version();
  s->hello = hello;
  s->write = std::move(write);
  std::function<void(pid_t, uint64_t)> observer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    sessions_.push_back(s);
    observer = on_hello_;
  }
  cv_.notify_all();
  if (observer) observer(s->pid, s->hello_version);
  return s;
}

std::shared_ptr<SessionRegistry::Session> SessionRegistry::Add(pid_t pid, uint64_t version,
                                                               WriteFn write) {
  zproxy::v1::Hello hello;
  hello.set_pid(static_cast<uint32_t>(pid));
  hello.set_config_version(version);
  return Add(hello, std::move(write));
}

void SessionRegistry::SetHelloObserver(std::function<void(pid_t, uint64_t)> observer) {
  std::lock_guard<std::mutex> lock(mu_);
  on_hello_ = std::move(observer);
}

bool SessionRegistry::HelloOf(pid_t pid, zproxy::v1::Hello* hello) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<Session> s = FindLocked(pid);
  if (s == nullptr) return false;
  *hello = s->hello;
  return true;
}

void SessionRegistry::Remove(const std::shared_ptr<Session>& session) {
  std::lock_guard<std::mutex> lock(mu_);
  session->gone = true;
  sessions_.erase(std::remove(sessions_.begin(), sessions_.end(), session), sessions_.end());
  cv_.notify_all();
}

void SessionRegistry::OnMessage(const std::shared_ptr<Session>& s,
                                const zproxy::v1::DataplaneMessage& m) {
  std::lock_guard<std::mutex> lock(mu_);
  switch (m.kind_case()) {
    case zproxy::v1::DataplaneMessage::kAck:
      if (s->awaiting != 0 && m.ack().version() == s->awaiting) {
        s->outcome.kind = PushOutcome::kAck;
        s->outcome.apply_us = m.ack().apply_us();
        s->serving_version = m.ack().version();
        s->answered = true;
      }
      break;
    case zproxy::v1::DataplaneMessage::kNack:
      if (s->awaiting != 0 && m.nack().version() == s->awaiting) {
        s->outcome.kind =
            m.nack().needs_restart() ? PushOutcome::kNeedsRestart : PushOutcome::kRejected;
        s->outcome.reason = m.nack().reason();
        s->answered = true;
      }
      break;
    case zproxy::v1::DataplaneMessage::kStats:
      s->stats_text = m.stats().prometheus_text();
      s->stats_version = m.stats().config_version();
      s->stats_at = Clock::now();
      s->has_stats = true;
      return;
    default:
      return;
  }
  cv_.notify_all();
}

std::shared_ptr<SessionRegistry::Session> SessionRegistry::FindLocked(pid_t pid) const {
  // The newest stream of that pid wins (a reconnect may overlap the old stream's end).
  for (auto it = sessions_.rbegin(); it != sessions_.rend(); ++it) {
    if ((*it)->pid == pid) return *it;
  }
  return nullptr;
}

PushOutcome SessionRegistry::Push(pid_t pid, const zproxy::v1::ConfigSnapshot& snapshot,
                                  Ms connect_wait, Ms ack_timeout) {
  PushOutcome out;
  std::shared_ptr<Session> s;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, connect_wait, [&] { return (s = FindLocked(pid)) != nullptr; });
    if (s == nullptr) {
      out.reason = "data plane pid " + std::to_string(pid) + " has no sync stream (waited " +
                   std::to_string(connect_wait.count()) + " ms)";
      return out;
    }
    s->awaiting = snapshot.version();
    s->answered = false;
    s->outcome = PushOutcome{};
  }
  zproxy::v1::ControlMessage msg;
  *msg.mutable_snapshot() = snapshot;
  const bool written = s->write(msg);
  std::unique_lock<std::mutex> lock(mu_);
  if (!written) {
    s->awaiting = 0;
    out.reason = "sync stream of data plane pid " + std::to_string(pid) + " broke while sending";
    return out;
  }
  const bool done = cv_.wait_for(lock, ack_timeout, [&] { return s->answered || s->gone; });
  s->awaiting = 0;
  if (s->answered) return s->outcome;
  if (!done) {
    out.kind = PushOutcome::kTimeout;
    out.reason = "data plane pid " + std::to_string(pid) + " did not answer config version " +
                 std::to_string(snapshot.version()) + " within " +
                 std::to_string(ack_timeout.count()) + " ms";
    return out;
  }
  out.reason = "data plane pid " + std::to_string(pid) + " disconnected before answering";
  return out;
}

bool SessionRegistry::ServingVersion(pid_t pid, uint64_t* version) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<Session> s = FindLocked(pid);
  if (s == nullptr) return false;
  *version = s->serving_version;
  return true;
}

bool SessionRegistry::LatestStats(pid_t pid, Ms max_age, std::string* prometheus_text,
                                  uint64_t* version) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<Session> s = FindLocked(pid);
  if (s == nullptr || !s->has_stats || Clock::now() - s->stats_at > max_age) return false;
  *prometheus_text = s->stats_text;
  if (version != nullptr) *version = s->stats_version;
  return true;
}

pid_t SessionRegistry::WaitFor(const std::function<bool(pid_t)>& pred, Ms timeout) const {
  // `pred` may depend on state outside the registry (the supervisor's current pid), so
  // re-check every few milliseconds, not only when a session comes or goes.
  const Clock::time_point deadline = Clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    for (const auto& s : sessions_) {
      if (pred(s->pid)) return s->pid;
    }
    if (Clock::now() >= deadline) return -1;
    cv_.wait_for(lock, Ms(20));
  }
}

std::vector<pid_t> SessionRegistry::Connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<pid_t> pids;
  for (const auto& s : sessions_) pids.push_back(s->pid);
  return pids;
}

}  // namespace zproxy::sync
