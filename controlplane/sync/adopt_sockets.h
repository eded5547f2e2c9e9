// The listen sockets travelling back from an orphaned data plane (one left serving by a
// zproxyd that died) to a new zproxyd: copies of the orphan's descriptors taken with
// pidfd_getfd(2), so the new zproxyd and its data plane serve the very same sockets and no
// connection waiting in an accept queue is lost when the orphan drains. Needs
// PTRACE_MODE_ATTACH over the orphan (root with CAP_SYS_PTRACE); on any mismatch the
// caller falls back to joining the orphan's SO_REUSEPORT groups with fresh sockets.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "controlplane/listen_sockets.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::sync {

// For every listener of `config`, exactly `workers` listening TCP sockets bound to its
// address must be found among `pid`'s descriptors; they are returned in listener order,
// then in the orphan's descriptor order (which is the order zproxyd handed them over).
// With `missing` non-null, a listener the orphan has no socket for at all (added, or its
// address changed, while zproxyd was down) is listed there (its index in config) instead
// of failing; the caller creates fresh sockets for it.
bool AdoptListenSockets(pid_t pid, const zproxy::v1::Config& config, uint32_t workers,
                        std::vector<controlplane::ListenSocket>* out, std::string* error,
                        std::vector<int>* missing = nullptr);

// Adoption's socket set: the orphan's sockets for every listener it serves on the configured
// address (AdoptListenSockets with `missing`), fresh ones for the listeners it has none for;
// in listener order. `fresh` (optional) counts the listeners that got fresh sockets.
bool GatherListenSockets(pid_t pid, const zproxy::v1::Config& config, uint32_t workers,
                         std::vector<controlplane::ListenSocket>* out, std::string* error,
                         size_t* fresh = nullptr);

}  // namespace zproxy::sync
