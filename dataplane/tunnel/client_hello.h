// Reads the server name (SNI) and the offered ALPN protocols out of a TLS ClientHello,
// without terminating TLS: what a tcp_proxy listener with sni_routes peeks at before it
// picks a cluster (sni_inspect.cc). The bytes are the first ones the client sent, as the
// socket holds them (MSG_PEEK): the parser never changes them and never allocates.
//
// Incremental by re-parsing: the caller peeks what has arrived so far and calls again with
// more when the answer is kNeedMore (`need` says how many bytes would let it go further),
// so a ClientHello split across TCP segments, or across TLS records, is handled without
// state. Everything is bounds-checked; anything that is not a well-formed ClientHello is
// kMalformed, with a short static reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace zproxy::tunnel {

// The most the parser looks at: one full-size TLS record (5-byte header + 2^14 bytes).
// A ClientHello (with the headers of every record carrying it) must fit in this; real ones
// are 200 bytes to ~2 KiB (post-quantum key shares included).
inline constexpr size_t kMaxClientHelloBytes = 5 + 16384;

enum class HelloStatus : uint8_t {
  kComplete,   // *out is filled
  kNeedMore,   // a prefix of a possible ClientHello: call again with at least `need` bytes
  kMalformed,  // not a TLS handshake record, not a ClientHello, or inconsistent lengths
};

struct ClientHelloInfo {
  // The host_name of the server_name extension, as sent (empty: no SNI).
  std::string_view server_name;
  // The ALPN extension's ProtocolNameList without its 2-byte length: a sequence of
  // (1-byte length, name) entries, validated (empty: no ALPN). See AlpnOffers.
  std::string_view alpn;
};

struct HelloResult {
  HelloStatus status;
  size_t need = 0;            // kNeedMore: total input length worth calling again with
  const char* why = nullptr;  // kMalformed: what was wrong
};

// `in`: the stream's first bytes. `scratch` (at least kMaxClientHelloBytes): where a
// ClientHello fragmented across several records is reassembled; the views in *out point
// into `in` or `scratch`, valid while both are.
HelloResult ParseClientHello(std::string_view in, char* scratch, ClientHelloInfo* out);

// Whether the ALPN list (ClientHelloInfo::alpn) contains `protocol`.
bool AlpnOffers(std::string_view alpn, std::string_view protocol);

}  // namespace zproxy::tunnel
