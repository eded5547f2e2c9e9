// The seam between a finished userspace handshake and kernel TLS (kTLS). The worker calls
// TryKernelOffload once per connection, after the handshake, when the socket is quiet
// (no receive armed, nothing unsent, no buffered ciphertext in the session). On
// kInstalled the kernel encrypts and decrypts from then on and the worker moves plaintext
// over the same io_uring recv/send paths; otherwise the connection stays in userspace TLS.
//
// The installer itself (key extraction, TCP_ULP "tls", TLS_TX/TLS_RX) lives in
// dataplane/ktls; until that package is on main this returns kUnsupported, so the worker
// code is the same either way.
#pragma once

#include <cstdint>

struct ssl_st;

namespace zproxy::tls {

enum class OffloadResult : uint8_t {
  kInstalled,    // TX and RX keys are in the kernel
  kUnsupported,  // no kTLS here (kernel without CONFIG_TLS, or not built in)
  kFailed,       // this connection could not be offloaded (cipher, state): stay userspace
};

// Whether kTLS can work in this process at all (detected once). When false the worker
// skips the quiescing steps entirely.
bool KernelOffloadAvailable();

// `fd` must be a regular descriptor (not an io_uring fixed file) of an ESTABLISHED socket.
OffloadResult TryKernelOffload(int fd, ssl_st* ssl);

}  // namespace zproxy::tls
