#include "controlplane/sync/config_push.h"

#include "common/log.h"

namespace zproxy::sync {

state::OpStatus ApplyConfig(SessionRegistry& sessions, pid_t current_pid,
                            const zproxy::v1::Config& config, uint64_t version,
                            const FillSnapshotFn& fill, const HandoverFn& handover,
                            PushTimeouts timeouts) {
  const unsigned long long v = version;
  std::string why_handover = "no data plane is running";
  if (current_pid > 0) {
    zproxy::v1::ConfigSnapshot snapshot;
    snapshot.set_version(version);
    *snapshot.mutable_config() = config;
    if (fill) fill(config, &snapshot);
    PushOutcome o = sessions.Push(current_pid, snapshot, timeouts.connect_wait, timeouts.ack);
    switch (o.kind) {
      case PushOutcome::kAck:
        ZLOG_INFO("config version %llu live in data plane pid %d (applied in %llu us)", v,
                  current_pid, static_cast<unsigned long long>(o.apply_us));
        return state::OpStatus::Ok();
      case PushOutcome::kRejected:
        ZLOG_WARN("config version %llu rejected by data plane pid %d: %s", v, current_pid,
                  o.reason.c_str());
        return state::OpStatus::Error(state::OpStatus::kFailedPrecondition,
                                      "rejected by the data plane: " + o.reason);
      case PushOutcome::kNeedsRestart:
        why_handover = "it cannot be applied in place (" + o.reason + ")";
        break;
      case PushOutcome::kNoStream:
      case PushOutcome::kTimeout:
        why_handover = o.reason;
        break;
    }
  }
  ZLOG_INFO("config version %llu: graceful data plane handover because %s", v,
            why_handover.c_str());
  std::string error;
  if (!handover(config, version, &error)) {
    return state::OpStatus::Error(state::OpStatus::kUnavailable, "handover failed: " + error);
  }
  return state::OpStatus::Ok();
}

}  // namespace zproxy::sync
