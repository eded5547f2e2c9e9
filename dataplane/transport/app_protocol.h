// The application protocol a TLS connection negotiated with ALPN, kept on the connection
// so the layer above can pick its codec (HTTP/1.1 today; HTTP/2 next) without BoringSSL.
#pragma once

#include <cstdint>
#include <string_view>

namespace zproxy::dataplane::transport {

enum class AppProtocol : uint8_t {
  kNone,    // no ALPN (not negotiated, or a plaintext connection): HTTP/1.1 by default
  kHttp11,  // "http/1.1"
  kHttp2,   // "h2"
  kOther,   // a protocol id zproxy has no codec for
};

// Maps the ALPN protocol id the handshake selected (empty: none) to the protocol.
AppProtocol AppProtocolOf(std::string_view alpn);

// "none", "http/1.1", "h2", "other": for logs and debug output.
std::string_view AppProtocolName(AppProtocol p);

}  // namespace zproxy::dataplane::transport
