// Dropping the data plane's privileges once bootstrap is done (DESIGN.md: "unprivileged
// after start"). zproxyd starts the data plane as root; everything that needs root happens
// before the drop: receiving the listen sockets and BPF map fds, mapping the health
// region, reading the TLS files of the first snapshot, opening the access log, binding
// /metrics. After it the process holds no capability in any set, cannot regain one
// (NO_NEW_PRIVS, empty bounding set) and optionally runs as an unprivileged user.
//
// The drop must run while the process has ONE thread: capabilities, the bounding set and
// NO_NEW_PRIVS are per thread in Linux, so a thread started earlier would keep them.
// Every thread started after (workers, their io_uring rings and kernel io-wq/SQPOLL
// threads, /metrics, gRPC) inherits the dropped credentials.
#pragma once

#include <string>

namespace zproxy::dataplane::privileges {

struct Options {
  std::string user;   // Config.dataplane_user; empty = stay uid 0 without capabilities
  bool keep = false;  // Config.dataplane_keep_privileges: the operator's opt-out
};

struct Outcome {
  std::string state;    // zproxy_dataplane_info{privileges=...}: "dropped" or "kept"
  std::string summary;  // the one log line
};

// Returns false with *error when any step fails; the caller must then exit (a data plane
// never goes on serving with privileges it was told to drop).
bool Drop(const Options& options, Outcome* out, std::string* error);

}  // namespace zproxy::dataplane::privileges
