// Per-connection TLS state of a client connection on a TLS listener (or an upstream
// connection of a cluster with tls), attached from the TLS layer's pool at accept (or
// connect) and released at close. The session (BoringSSL) writes ciphertext
// into `wire`, a short queue of worker blocks that the send path transmits; plaintext
// for the client stays in the connection's ordinary output queue until it is encrypted,
// so the HTTP code is the same for TLS and plaintext connections.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>

#include "dataplane/tls/handshake_failure.h"
#include "dataplane/tls/session.h"
#include "dataplane/transport/app_protocol.h"
#include "dataplane/worker/block_pool.h"

namespace zproxy::tls {
class ServerContext;
}

namespace zproxy::dataplane::transport {

// A run of ciphertext in a block: bytes [off, off + len) are still to be sent.
struct WireChunk {
  uint32_t block;
  uint32_t off;
  uint32_t len;
};

// Capacity of the wire queue. Encryption stops at kWireLimit chunks (backpressure: the
// plaintext then waits in the output queue), and one step encrypts at most one record
// (16 KiB), which adds at most three chunks, so Append never runs out of room.
constexpr uint32_t kWireCap = 16;
constexpr uint32_t kWireLimit = 8;
constexpr uint32_t kTlsRecordPlain = 16384;

struct TlsConn final : tls::WireSink {
  tls::Session session;
  // Keeps the listener's (or cluster's) TLS context alive while the connection uses it,
  // even if a new config snapshot replaced it.
  std::shared_ptr<const void> context;
  BlockPool* blocks = nullptr;
  WireChunk wire[kWireCap];
  uint32_t wire_head = 0, wire_count = 0;
  tls::TlsMode mode = tls::TlsMode::kUserspace;
  // Negotiated at the handshake, for the access log (BoringSSL's static strings; kept
  // here because the session is freed when kTLS takes over).
  const char* version = "";
  const char* cipher = "";
  // The client's SNI (route header variable ${tls_sni}); copied for the same reason.
  char sni[256];
  uint8_t sni_len = 0;
  // What ALPN selected, set with version and cipher when the handshake completes: the
  // codec the connection needs (the session's copy is gone after kTLS takes over).
  AppProtocol app_protocol = AppProtocol::kNone;
  // Handshake done, waiting for a quiet socket to hand the keys to the kernel.
  bool offload_pending = false;

  WireChunk& WireAt(uint32_t i) { return wire[(wire_head + i) % kWireCap]; }

  bool Append(const char* data, size_t len) override {
    while (len > 0) {
      if (wire_count > 0) {
        WireChunk& tail = WireAt(wire_count - 1);
        uint32_t end = tail.off + tail.len;
        uint32_t room = blocks->Capacity(tail.block) - end;
        if (room > 0) {
          uint32_t n = static_cast<uint32_t>(std::min<size_t>(room, len));
          memcpy(blocks->Data(tail.block) + end, data, n);
          tail.len += n;
          data += n;
          len -= n;
          continue;
        }
      }
      if (wire_count == kWireCap) return false;
      wire[(wire_head + wire_count) % kWireCap] = WireChunk{blocks->Alloc(len), 0, 0};
      wire_count++;
    }
    return true;
  }

  // Drops `n` sent bytes from the front of the wire queue.
  void Consume(size_t n) {
    while (n > 0 && wire_count > 0) {
      WireChunk& head = wire[wire_head];
      uint32_t take = static_cast<uint32_t>(std::min<size_t>(n, head.len));
      head.off += take;
      head.len -= take;
      n -= take;
      // A sent chunk gives its block back at once: an idle connection holds none.
      if (head.len == 0) {
        blocks->Free(head.block);
        wire_head = (wire_head + 1) % kWireCap;
        wire_count--;
      }
    }
  }

  void FreeWire() {
    while (wire_count > 0) {
      blocks->Free(wire[wire_head].block);
      wire_head = (wire_head + 1) % kWireCap;
      wire_count--;
    }
    wire_head = 0;
  }

  // Slab contract. The session and blocks are released by TlsLayer::Release first.
  void Reset() {
    session.Reset();
    context.reset();
    wire_head = wire_count = 0;
    mode = tls::TlsMode::kUserspace;
    version = cipher = "";
    app_protocol = AppProtocol::kNone;
    offload_pending = false;
  }
};

}  // namespace zproxy::dataplane::transport
