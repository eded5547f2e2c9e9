// Start-up step: the internal DataplaneSync endpoint. Every data plane dials it for
// config snapshots (controlplane/sync). It starts before the listen sockets so that an
// orphaned data plane (left serving by a zproxyd that died) can be found and taken over.
#pragma once

#include <memory>

#include "controlplane/sync/sync_server.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::controlplane::startup {

// Starts the sync server at the path derived from admin_address and state_dir, and hands
// its socket to dataplane_user when one is set. Returns nullptr after a warning when it
// cannot start: zproxyd then serves on, restarting the data plane for every config change.
std::unique_ptr<sync::SyncServer> StartSyncServer(const zproxy::v1::Config& config);

}  // namespace zproxy::controlplane::startup
