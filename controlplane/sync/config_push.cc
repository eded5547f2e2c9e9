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

state::OpStatus ResyncConfig(SessionRegistry& sessions, pid_t pid, uint64_t dataplane_version,
                             const zproxy::v1::Config& config, uint64_t version,
                             const FillSnapshotFn& fill, const HandoverFn& handover,
                             PushTimeouts timeouts) {
  const unsigned long long v = version;
  const unsigned long long dv = dataplane_version;
  zproxy::v1::ConfigSnapshot snapshot;
  snapshot.set_version(version);
  snapshot.set_resync(true);
  *snapshot.mutable_config() = config;
  if (fill) fill(config, &snapshot);
  PushOutcome o = sessions.Push(pid, snapshot, timeouts.connect_wait, timeouts.ack);
  switch (o.kind) {
    case PushOutcome::kAck:
      ZLOG_INFO("resync: data plane pid %d serves config version %llu (it reported %llu)", pid, v,
                dv);
      return state::OpStatus::Ok();
    case PushOutcome::kNeedsRestart: {
      ZLOG_INFO(
          "resync: data plane pid %d cannot take config version %llu in place (%s): handing "
          "over to a new data plane; pid %d drains",
          pid, v, o.reason.c_str(), pid);
      std::string error;
      if (!handover(config, version, &error)) {
        ZLOG_WARN(
            "resync: handover to config version %llu failed: %s; pid %d keeps serving "
            "version %llu",
            v, error.c_str(), pid, dv);
        return state::OpStatus::Error(state::OpStatus::kUnavailable, "handover failed: " + error);
      }
      return state::OpStatus::Ok();
    }
    case PushOutcome::kRejected:
      ZLOG_WARN(
          "resync: data plane pid %d rejected config version %llu: %s; it keeps serving "
          "version %llu",
          pid, v, o.reason.c_str(), dv);
      return state::OpStatus::Error(state::OpStatus::kFailedPrecondition, o.reason);
    case PushOutcome::kNoStream:
    case PushOutcome::kTimeout:
      break;
  }
  ZLOG_WARN(
      "resync: config version %llu not delivered to data plane pid %d (%s); retried at "
      "its next Hello",
      v, pid, o.reason.c_str());
  return state::OpStatus::Error(state::OpStatus::kUnavailable, o.reason);
}

state::OpStatus RefreshEndpoints(SessionRegistry& sessions, pid_t pid,
                                 const zproxy::v1::Config& config, uint64_t version,
                                 const FillSnapshotFn& fill, PushTimeouts timeouts) {
  const unsigned long long v = version;
  if (pid <= 0) return state::OpStatus::Error(state::OpStatus::kUnavailable, "no data plane");
  zproxy::v1::ConfigSnapshot snapshot;
  snapshot.set_version(version);
  snapshot.set_endpoints_refresh(true);
  *snapshot.mutable_config() = config;
  if (fill) fill(config, &snapshot);
  PushOutcome o = sessions.Push(pid, snapshot, timeouts.connect_wait, timeouts.ack);
  if (o.kind == PushOutcome::kAck) {
    ZLOG_INFO(
        "dns: new endpoint addresses live in data plane pid %d (config version %llu, "
        "applied in %llu us)",
        pid, v, static_cast<unsigned long long>(o.apply_us));
    return state::OpStatus::Ok();
  }
  ZLOG_WARN(
      "dns: new endpoint addresses not taken by data plane pid %d (config version %llu): "
      "%s; retrying",
      pid, v, o.reason.c_str());
  return state::OpStatus::Error(state::OpStatus::kUnavailable, o.reason);
}

}  // namespace zproxy::sync
