// zproxyd starting while its ports are held by a data plane its predecessor left serving
// (docs/admin-api.md: "zproxyd restarts: the data plane is adopted"): which orphan to keep,
// adoption or takeover, and the listen sockets either way. main.cc runs the two steps in order.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "controlplane/dataplane_supervisor.h"
#include "controlplane/health/health_service.h"
#include "controlplane/listen_sockets.h"
#include "controlplane/sync/adoption.h"
#include "controlplane/sync/sync_sessions.h"
#include "zproxy/v1/config.pb.h"
#include "zproxy/v1/dataplane_sync.pb.h"

namespace zproxy::controlplane {

struct OrphanStartup {
  // The orphan kept (adopted, or taken over first); no pid when there was none. Its slots
  // and verdicts seed the health service either way (it reads them until it is re-attached
  // or has drained).
  zproxy::v1::Hello hello;
  sync::AdoptionHandle adoption;  // channel valid: adopt hello.pid()
  std::vector<pid_t> to_drain;    // takeover: SIGTERM once our data plane serves

  std::vector<health::HealthService::InheritedSlot> InheritedHealth() const;
};

// Step 1, after CreateListenSockets failed with `*error` (kept when false is returned:
// nothing but an orphan may hold the ports). Waits up to 3 s for data planes to dial in,
// keeps the one serving the newest version, and gathers `sockets`: for adoption its own plus
// fresh ones for listeners it lacks; for takeover (`no_adopt`, or adoption impossible) its
// sockets, else fresh ones joining its SO_REUSEPORT groups.
bool StartWithOrphans(sync::SessionRegistry& sessions, const zproxy::v1::Config& config,
                      uint32_t workers, bool no_adopt, std::vector<ListenSocket>* sockets,
                      OrphanStartup* out, std::string* error);

// Step 2, once the health service runs and before the supervisor does: sends the health
// region over the adoption channel and hands the orphan to `supervisor`. On failure the
// orphan is taken over instead (moved to to_drain). `dataplane_view` is the current config.
void CompleteAdoption(OrphanStartup* o, health::HealthService& health,
                      const zproxy::v1::Config& dataplane_view, uint64_t current_version,
                      DataplaneSupervisor& supervisor, long long ms_since_start);

}  // namespace zproxy::controlplane
