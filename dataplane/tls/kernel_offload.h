// The seam between a finished userspace handshake and kernel TLS (kTLS, dataplane/ktls).
// The worker calls TryKernelOffload once per connection, after the handshake, when the
// socket is quiet (no receive armed, nothing unsent, nothing buffered in the session). On
// kInstalled the kernel seals and opens records from then on and the worker moves plaintext
// over the same io_uring recv/send paths; on kBroken it closes the connection; on anything
// else the connection stays in userspace TLS.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataplane/tls/handshake_failure.h"

struct ssl_st;

namespace zproxy::tls {

// Whether kTLS can work in this process at all (detected once, one log line). When false
// the worker skips the quiescing steps entirely.
bool KernelOffloadAvailable();

// Test knob, set once at startup before any worker runs: attempt the offload on every
// connection even where detection says kTLS is absent, so the quiescing path and the
// installer's refusal (no_kernel_support / pending_data) run on kernels without kTLS.
// Environment: ZPROXY_KTLS_ALWAYS_ATTEMPT=1.
void ForceKernelOffloadAttempts(bool force);

// `fd` must be a regular descriptor (not an io_uring fixed file) of an ESTABLISHED socket.
OffloadOutcome TryKernelOffload(int fd, ssl_st* ssl);

// After kInstalled, recv() fails with EIO when the next record is not application data.
// Reads that record (non-blocking) and says what to do.
enum class ControlRecord : uint8_t {
  kContinue,     // a record to skip (NewSessionTicket): receive again
  kData,         // application data after all: *n bytes in buf
  kCloseNotify,  // the peer ended its stream cleanly: treat as EOF
  kClose,        // alert, KeyUpdate (cannot re-key here), garbage, error: close
};
ControlRecord ReadControlRecord(int fd, char* buf, size_t cap, size_t* n);

}  // namespace zproxy::tls
