// Kernel TLS (kTLS): after a BoringSSL handshake, hand the record keys of a connection to
// the kernel (TCP_ULP "tls" + TLS_TX/TLS_RX), so the data plane moves plaintext with plain
// send/recv (io_uring, SEND_ZC, sendfile, splice) and the kernel seals and opens records.
//
// Use:
//   1. Detect() once at startup (it logs one line): kAbsent -> never call TryInstall.
//   2. After SSL_do_handshake() returned 1 on an ESTABLISHED socket: TryInstall(fd, ssl).
//      kInstalled: from now on never call SSL_read/SSL_write/SSL_shutdown on that SSL
//      (BoringSSL's record state is stale: it would corrupt the stream); SSL_free it when
//      convenient. Every other outcome leaves the connection in userspace TLS, unharmed,
//      except kBroken (close the connection).
//   3. On the kTLS socket, plain recv() returns EIO when the next record is not application
//      data: read it with RecvRecord() (records.h) and act on its kind. Alerts and
//      close_notify go out with SendAlert()/SendCloseNotify() (records.h).
//   4. io_uring on a kTLS socket (checked in the ktls-vm, kernel 6.1): multishot RECV with
//      provided buffers, SEND and SENDMSG work on plaintext; a RECV completes with -EIO at a
//      non-data record (step 3). SEND_ZC is refused with -EOPNOTSUPP and sends nothing: use
//      plain SEND/SENDMSG for kTLS connections (sendfile() works: ktls_bench uses it).
//
// The buffered-bytes rule: kTLS RX starts at the next byte in the kernel's receive queue, so
// anything BoringSSL has already taken off the socket must be consumed first. TryInstall
// installs NOTHING and returns kPendingData while BoringSSL holds unread input (decrypted
// bytes, a partial or undecrypted record: SSL_has_pending) or while a memory read BIO still
// holds bytes, or a memory write BIO holds bytes not yet sent to the socket. The caller
// either drains (SSL_read until those are empty, forward the plaintext, send the write BIO)
// and calls TryInstall again, or keeps the connection in userspace TLS. BoringSSL reads
// exactly one record at a time (no read-ahead in TLS), so SSL_has_pending also covers a
// partial record in its read buffer (tested). A custom BIO that reports no BIO_pending (such
// as dataplane/tls's Session over an input window) must be checked by its owner: install
// only when its window is used up and all ciphertext it produced was handed to the socket.
//
// Key material is computed on the stack and wiped after the setsockopt calls; nothing here
// allocates or keeps state per connection.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>

namespace zproxy::ktls {

enum class Support : uint8_t { kAbsent, kPresent };

// Probes TCP_ULP "tls" on a fresh, unconnected TCP socket: ENOTCONN means the kernel has
// the TLS ULP (present), ENOENT means it has not (no CONFIG_TLS, or tls.ko not loaded and
// the process may not autoload it: run `modprobe tls`). Any other answer counts as absent.
// The probe runs and logs one line on the first call only; later calls return that answer.
Support Detect();

// Per-connection outcome of TryInstall. The values are stable and OutcomeName() gives a
// metric label for each (zproxy_tls_connections_total{mode=...}).
enum class Outcome : uint8_t {
  kInstalled,           // TX and RX keys are in the kernel: plain send/recv from now on
  kNoKernelSupport,     // TCP_ULP "tls" -> ENOENT: this kernel has no kTLS
  kUnsupportedVersion,  // not TLS 1.2 or 1.3, or the handshake is not complete
  kUnsupportedCipher,   // not AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305
  kPendingData,         // BoringSSL holds unread input or unsent output: see the rule above
  kKernelRefused,       // a setsockopt failed before any key was installed (errno in .error)
  kBroken,              // TX keys installed, then TLS_RX refused (errno): close the connection
};
inline constexpr size_t kOutcomeCount = 7;

// "installed", "no_kernel_support", "unsupported_version", "unsupported_cipher",
// "pending_data", "kernel_refused", "broken".
const char* OutcomeName(Outcome outcome);

struct Result {
  Outcome outcome = Outcome::kNoKernelSupport;
  int error = 0;         // errno for kKernelRefused and kBroken (and the ULP's errno)
  uint16_t version = 0;  // TLS1_2_VERSION / TLS1_3_VERSION, 0 if unknown
  uint16_t cipher = 0;   // IANA cipher suite id (SSL_CIPHER_get_protocol_id), 0 if none

  bool installed() const { return outcome == Outcome::kInstalled; }
  // True when the connection can (and must) keep using BoringSSL for its records.
  bool userspace_usable() const {
    return outcome != Outcome::kInstalled && outcome != Outcome::kBroken;
  }
};

// Installs kTLS TX and RX on `fd` for the completed handshake in `ssl` (TLS 1.2 or 1.3;
// AES-128-GCM, AES-256-GCM or ChaCha20-Poly1305; server or client side). The socket must
// be ESTABLISHED. Makes no syscall unless version, cipher and the buffered-bytes rule allow
// it. Errors are values; it never throws and never logs (callers count outcomes).
Result TryInstall(int fd, SSL* ssl);

}  // namespace zproxy::ktls
