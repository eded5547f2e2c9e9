// Start-up steps that turn zproxyd's handoff (common/handoff) and the process's limits
// into what the workers are built from: the health region, the splice map fds, the listen
// sockets per worker, the access log descriptor. They run before the privilege drop,
// while the process may still open and map anything.
//
// Each step that can fail logs the error itself (the exact lines tests and operators
// match on) and returns false; the data plane then exits with status 1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/health_region.h"
#include "common/unique_fd.h"
#include "dataplane/proxy/passthrough_mode.h"
#include "dataplane/worker/worker.h"
#include "zproxy/v1/dataplane.pb.h"

namespace zproxy::dataplane::startup {

// The CPUs in the process's affinity mask, ascending; empty if it cannot be read.
std::vector<int> AffinityCpus();

// Raises the soft fd limit to the hard one and returns it (at most 2^20). Each worker's
// registered file table (where accepted sockets live) is sized from it: the kernel
// charges the table against RLIMIT_NOFILE.
uint32_t RaiseFileLimit();

// Maps the health region the bootstrap points at (zproxyd's active checks: the pinned BPF
// map, or its memfd fallback) read-only into *region, fills *slots and closes the fd (the
// mapping stays valid). Without a region nothing happens: every endpoint counts as
// healthy.
bool MapHealthRegion(const zproxy::v1::DataplaneBootstrap& boot, std::vector<UniqueFd>* fds,
                     HealthRegion* region, HealthSlotTable* slots);

// Moves the kernel splicing map fds (SOCKHASH, peer table, counters; absent without BPF)
// and the sidecar's zproxy_orig_by_peer (absent without sidecar interception) out of *fds
// into *caps. They stay open for the process's life; workers only update and
// read the maps.
bool TakeSpliceMaps(const zproxy::v1::DataplaneBootstrap& boot, std::vector<UniqueFd>* fds,
                    PassthroughCaps* caps);

// Sorts the bootstrap's listen sockets into one list per worker (each tagged with its
// listener's index in the config) and sets TCP_NODELAY on them. The fds stay owned by
// *fds.
bool AssignListenSockets(const zproxy::v1::DataplaneBootstrap& boot,
                         const std::vector<UniqueFd>& fds, uint32_t workers,
                         std::vector<std::vector<WorkerListenSocket>>* sockets);

// The access log descriptor for Config.access_log: -1 for none, 1 or 2 for "stdout" and
// "stderr", else the file opened O_APPEND (never closed: it lives as long as the process).
bool OpenAccessLog(const std::string& access_log, int* fd);

}  // namespace zproxy::dataplane::startup
