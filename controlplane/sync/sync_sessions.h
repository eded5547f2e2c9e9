// The data planes connected to zproxyd's DataplaneSync endpoint, without gRPC: one session
// per open Sync stream, keyed by the pid its Hello named. Push() sends a snapshot to one
// data plane and waits for its ACK/NACK; stats frames are kept per session for GetStats.
// During a handover two data planes are connected; callers push to the current one.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "zproxy/v1/dataplane_sync.pb.h"

namespace zproxy::sync {

struct PushOutcome {
  enum Kind {
    kAck,           // every worker serves the snapshot
    kRejected,      // NACK: the snapshot is invalid for the data plane (reason says why)
    kNeedsRestart,  // NACK with needs_restart: only a new data plane can take it
    kNoStream,      // no stream from that pid (or it broke before answering)
    kTimeout,       // no answer within the ACK timeout
  };
  Kind kind = kNoStream;
  std::string reason;
  uint64_t apply_us = 0;  // kAck: the data plane's own apply time
};

const char* PushOutcomeName(PushOutcome::Kind kind);

class SessionRegistry {
 public:
  using Ms = std::chrono::milliseconds;
  // Sends one message on the session's stream; false if the stream is gone.
  using WriteFn = std::function<bool(const zproxy::v1::ControlMessage&)>;
  struct Session;

  // A stream said Hello. `write` is called by Push() only (never concurrently). The hello
  // observer (if any) runs after, on the caller's thread: it must not block.
  std::shared_ptr<Session> Add(const zproxy::v1::Hello& hello, WriteFn write);
  std::shared_ptr<Session> Add(pid_t pid, uint64_t version, WriteFn write);  // tests

  // Called for every Hello (pid, the version it serves), e.g. to resync its config.
  void SetHelloObserver(std::function<void(pid_t, uint64_t)> observer);

  // The Hello of data plane `pid`'s newest stream; false if it is not connected.
  bool HelloOf(pid_t pid, zproxy::v1::Hello* hello) const;
  // The stream ended; a Push() waiting on it returns kNoStream at once.
  void Remove(const std::shared_ptr<Session>& session);
  // A frame other than Hello arrived on the session's stream.
  void OnMessage(const std::shared_ptr<Session>& session, const zproxy::v1::DataplaneMessage& m);

  // Sends `snapshot` to the data plane `pid` (waiting up to `connect_wait` for it to
  // connect: a fresh data plane dials in right after its workers start) and waits up to
  // `ack_timeout` for the ACK/NACK of that version. Serialize calls per pid.
  PushOutcome Push(pid_t pid, const zproxy::v1::ConfigSnapshot& snapshot, Ms connect_wait,
                   Ms ack_timeout);

  // The config version data plane `pid` serves as far as its newest stream told us: its
  // Hello's, then each ACKed push's. False if it is not connected. (/ready and READY=1.)
  bool ServingVersion(pid_t pid, uint64_t* version) const;

  // The newest stats frame of data plane `pid` if it is at most `max_age` old.
  bool LatestStats(pid_t pid, Ms max_age, std::string* prometheus_text, uint64_t* version) const;

  // Waits up to `timeout` for a connected data plane whose pid satisfies `pred`; returns
  // its pid or -1.
  pid_t WaitFor(const std::function<bool(pid_t)>& pred, Ms timeout) const;

  // Pids of the connected data planes, oldest stream first.
  std::vector<pid_t> Connected() const;

 private:
  std::shared_ptr<Session> FindLocked(pid_t pid) const;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<std::shared_ptr<Session>> sessions_;
  std::function<void(pid_t, uint64_t)> on_hello_;  // under mu_
};

}  // namespace zproxy::sync
