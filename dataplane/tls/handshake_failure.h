// Why a TLS handshake did not complete: the label of
// zproxy_tls_handshake_failures_total{reason}. Header-only and free of BoringSSL, so the
// metrics code can name the reasons without linking TLS.
#pragma once

#include <cstdint>

namespace zproxy::tls {

enum class HandshakeFailure : uint8_t {
  kNoSharedCipher,  // no common cipher suite, group or signature algorithm
  kVersion,         // the client's versions are all below min_version (or above ours)
  kUnknownSni,      // strict_sni: the client asked for a name no certificate covers
  kNotTls,          // garbage, plaintext HTTP, SSLv2: not a TLS record
  kTimeout,         // handshake_timeout_ms passed
  kClientClosed,    // EOF or reset before the handshake finished
  kClientAlert,     // the client aborted with an alert (e.g. it rejects our certificate)
  kProtocol,        // any other malformed or unexpected handshake message
  kCount,
};

inline const char* HandshakeFailureName(HandshakeFailure f) {
  switch (f) {
    case HandshakeFailure::kNoSharedCipher:
      return "no_shared_cipher";
    case HandshakeFailure::kVersion:
      return "version";
    case HandshakeFailure::kUnknownSni:
      return "unknown_sni";
    case HandshakeFailure::kNotTls:
      return "not_tls";
    case HandshakeFailure::kTimeout:
      return "timeout";
    case HandshakeFailure::kClientClosed:
      return "client_closed";
    case HandshakeFailure::kClientAlert:
      return "client_alert";
    case HandshakeFailure::kProtocol:
      return "protocol";
    case HandshakeFailure::kCount:
      break;
  }
  return "unknown";
}

// How a TLS connection carries its records after the handshake: the label of
// zproxy_tls_connections_total{mode}.
enum class TlsMode : uint8_t { kUserspace, kKtls, kCount };

inline const char* TlsModeName(TlsMode m) { return m == TlsMode::kKtls ? "ktls" : "userspace"; }

// What happened when the kernel was asked to take a connection over after its handshake:
// the label of zproxy_tls_offload_total{outcome}. The first seven mirror ktls::Outcome.
enum class OffloadOutcome : uint8_t {
  kInstalled,
  kNoKernelSupport,
  kUnsupportedVersion,
  kUnsupportedCipher,
  kPendingData,  // the session already held received bytes: stays in userspace
  kKernelRefused,
  kBroken,     // TX installed, RX refused: the connection is closed
  kFixedFile,  // accepted as an io_uring fixed file (TLS added at run time): no fd
  kCount,
};

inline const char* OffloadOutcomeName(OffloadOutcome o) {
  switch (o) {
    case OffloadOutcome::kInstalled:
      return "installed";
    case OffloadOutcome::kNoKernelSupport:
      return "no_kernel_support";
    case OffloadOutcome::kUnsupportedVersion:
      return "unsupported_version";
    case OffloadOutcome::kUnsupportedCipher:
      return "unsupported_cipher";
    case OffloadOutcome::kPendingData:
      return "pending_data";
    case OffloadOutcome::kKernelRefused:
      return "kernel_refused";
    case OffloadOutcome::kBroken:
      return "broken";
    case OffloadOutcome::kFixedFile:
      return "fixed_file";
    case OffloadOutcome::kCount:
      break;
  }
  return "unknown";
}

}  // namespace zproxy::tls
