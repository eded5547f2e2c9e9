// zproxyd's side of adopting a data plane left serving by a zproxyd that died (the data
// plane's side: dataplane/sync/adoption_channel.h). The new zproxyd
//   1. opens a pidfd on it (it is not our child: its exit shows as the pidfd becoming
//      readable, and signals go through pidfd_send_signal, immune to pid reuse);
//   2. copies its end of the adoption channel named in its Hello (pidfd_getfd);
//   3. sends the health region it writes (BPF map or memfd) with its slot table and waits
//      for the data plane to re-attach its snapshot to it.
// The listen sockets come back separately (adopt_sockets.h); the config is resynced over
// the sync stream (config_push.h: ResyncConfig).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "zproxy/v1/dataplane.pb.h"
#include "zproxy/v1/dataplane_sync.pb.h"

namespace zproxy::sync {

struct AdoptionHandle {
  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd channel;  // our copy of the data plane's adoption channel
};

// Steps 1 and 2. Fails with a reason when the Hello names no channel, the process is gone,
// or the copy is refused (no CAP_SYS_PTRACE over it) or is not the expected socket.
bool OpenAdoption(pid_t pid, const zproxy::v1::Hello& hello, AdoptionHandle* out,
                  std::string* error);

// Step 3: `message` carries the health fields only (slots, region fd index and kind), `fds`
// the region fd. Waits up to `timeout_ms` for the answer.
bool SendHealthRegion(int channel, const zproxy::v1::DataplaneBootstrap& message,
                      const std::vector<int>& fds, int timeout_ms, std::string* error);

}  // namespace zproxy::sync
