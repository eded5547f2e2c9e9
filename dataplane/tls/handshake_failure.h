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

}  // namespace zproxy::tls
