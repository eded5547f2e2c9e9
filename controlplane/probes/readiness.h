// When zproxyd is ready: what GET /ready answers and when systemd gets READY=1. Pure, so
// the rule is unit tested apart from processes and sockets.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace zproxy::probes {

struct ReadinessInputs {
  bool stopping = false;      // SIGTERM/SIGINT seen: draining
  pid_t pid = -1;             // the supervisor's current data plane, -1 = none
  bool have_sync = true;      // the DataplaneSync socket runs (else: no way to ask)
  bool connected = false;     // have_sync: that pid's sync stream is open
  uint64_t serving = 0;       // have_sync: the version it serves (Hello, then ACKs)
  uint64_t started_with = 0;  // !have_sync: the version the supervisor started it with
  uint64_t current = 0;       // the config store's version
};

struct Readiness {
  bool ready = false;
  std::string reason;  // one line, for the probe's body and the log
};

// Ready = not draining, a data plane runs, and it serves the current config version (a
// data plane dials the sync socket only once its workers serve the listeners).
Readiness EvaluateReadiness(const ReadinessInputs& in);

}  // namespace zproxy::probes
