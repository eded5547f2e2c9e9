// Dropping the data plane's privileges once bootstrap is done (DESIGN.md: "unprivileged
// after start"). zproxyd starts the data plane as root; everything that needs root happens
// before the drop: receiving the listen sockets and BPF map fds, mapping the health
// region, reading the TLS files of the first snapshot, opening the access log, binding
// /metrics. After it the process holds no capability in any set, cannot regain one
// (NO_NEW_PRIVS, empty bounding set) and optionally runs as an unprivileged user.
//
// Capabilities, the bounding set, NO_NEW_PRIVS and (with raw syscalls) the uids are per
// thread in Linux, so every thread drops its own: each worker right after creating its
// io_uring ring (a ring created with CAP_IPC_LOCK is not charged to RLIMIT_MEMLOCK for its
// pinned SEND_ZC pages: without that, zero-copy sends failed under load, 8 MiB shared by
// all of the user's processes), then the main thread, before any other thread starts.
// Every later thread (/metrics, gRPC, io-wq workers) inherits the dropped credentials.
#pragma once

#include <string>

namespace zproxy::dataplane::privileges {

struct Options {
  std::string user;   // Config.dataplane_user; empty = stay uid 0 without capabilities
  bool keep = false;  // Config.dataplane_keep_privileges: the operator's opt-out
  // Threads that already ran Drop on themselves (the workers, right after creating their
  // io_uring rings: a ring created with CAP_IPC_LOCK is not charged to RLIMIT_MEMLOCK for
  // its pinned SEND_ZC pages). Every other thread must not exist yet.
  int dropped_threads = 0;
  bool is_worker = false;  // a worker dropping its own thread: no thread count check
};

struct Outcome {
  std::string state;    // zproxy_dataplane_info{privileges=...}: "dropped" or "kept"
  std::string summary;  // the one log line
};

// Drops the CALLING THREAD's privileges (and the process's dumpability). Returns false with
// *error when any step fails; the caller must then exit (a data plane never goes on
// serving with privileges it was told to drop).
bool Drop(const Options& options, Outcome* out, std::string* error);

}  // namespace zproxy::dataplane::privileges
