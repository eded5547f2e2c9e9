// How zproxyd makes a config change live: push it to the running data plane over the sync
// stream and wait for the answer, falling back to a graceful handover when only a new data
// plane can take it. No gRPC here.
//
//   ACK                          -> done (no process started)
//   NACK without needs_restart   -> kFailedPrecondition with the data plane's reason
//   NACK with needs_restart,
//   no stream, no answer in time -> handover (new data plane on the same sockets)
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "controlplane/state/config_ops.h"
#include "controlplane/sync/sync_sessions.h"
#include "zproxy/v1/config.pb.h"
#include "zproxy/v1/dataplane_sync.pb.h"

namespace zproxy::sync {

struct PushTimeouts {
  std::chrono::milliseconds connect_wait{1000};  // a fresh data plane dials in this fast
  std::chrono::milliseconds ack{2000};
};

// Adds what the snapshot needs besides config and version (health slots).
using FillSnapshotFn =
    std::function<void(const zproxy::v1::Config& config, zproxy::v1::ConfigSnapshot* snapshot)>;
using HandoverFn =
    std::function<bool(const zproxy::v1::Config& config, uint64_t version, std::string* error)>;

// `config` is the data plane's view; `current_pid` the data plane serving now (<= 0: none,
// straight to the handover).
state::OpStatus ApplyConfig(SessionRegistry& sessions, pid_t current_pid,
                            const zproxy::v1::Config& config, uint64_t version,
                            const FillSnapshotFn& fill, const HandoverFn& handover,
                            PushTimeouts timeouts = {});

// Resync on Hello: data plane `pid` reported `dataplane_version`, not zproxyd's current
// `version` (a reconnect after a missed change; an adopted data plane whose zproxyd died
// before it got the newest config; a config file changed while zproxyd was down). Pushes
// the current config as a resync (applied whatever its version):
//   ACK                        -> done
//   NACK with needs_restart    -> handover: a new data plane, this one drains (logged: e.g.
//                                 an adopted data plane whose listeners differ)
//   NACK                       -> error (the data plane keeps serving what it has)
//   no stream, no answer       -> error; its next Hello resyncs again
state::OpStatus ResyncConfig(SessionRegistry& sessions, pid_t pid, uint64_t dataplane_version,
                             const zproxy::v1::Config& config, uint64_t version,
                             const FillSnapshotFn& fill, const HandoverFn& handover,
                             PushTimeouts timeouts = {});

// DNS discovery changed the addresses of host-name endpoints: `config` (the current
// version's view with the new addresses) is pushed as an endpoints refresh of `version`.
//   ACK                        -> done
//   NACK (any), no stream,
//   no answer                  -> error, logged; discovery retries, and a data plane that
//                                 reconnects gets a refresh after its Hello
// Never a handover: the addresses alone never need new sockets.
state::OpStatus RefreshEndpoints(SessionRegistry& sessions, pid_t pid,
                                 const zproxy::v1::Config& config, uint64_t version,
                                 const FillSnapshotFn& fill, PushTimeouts timeouts = {});

}  // namespace zproxy::sync
