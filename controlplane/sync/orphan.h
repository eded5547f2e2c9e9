// Taking over from an orphaned data plane. When zproxyd dies its data plane keeps serving
// on its last snapshot (it still holds the listen sockets) and keeps redialing the sync
// socket. A new zproxyd cannot probe-bind those ports, so it first asks: did a data plane
// dial in? If so it joins the orphan's SO_REUSEPORT groups with fresh sockets, starts its
// own data plane, and once that one is connected (its workers run) sends the orphan
// SIGTERM: it stops accepting and drains. No connection is refused on the way.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "controlplane/sync/sync_sessions.h"

namespace zproxy::sync {

// True if `pid` is a zproxy data plane (its /proc comm), so a pid named in a Hello is
// never signalled unless it really is one.
bool IsDataplaneProcess(pid_t pid);

// Waits up to `timeout` for data planes to dial in before zproxyd started any of its own
// (data planes redial every <= 500 ms). Returns their pids.
std::vector<pid_t> FindOrphans(const SessionRegistry& sessions, std::chrono::milliseconds timeout);

// Background thread: once the data plane `current_pid()` names has connected (or after
// `timeout`), SIGTERM to each orphan. Joined by the destructor.
class OrphanRetirer {
 public:
  OrphanRetirer(const SessionRegistry& sessions, std::vector<pid_t> orphans,
                std::function<pid_t()> current_pid, std::chrono::milliseconds timeout);
  ~OrphanRetirer();

 private:
  std::thread thread_;
};

}  // namespace zproxy::sync
