// The TLS layer: between the worker's socket I/O (receive into provided buffers, send from
// output queues: dataplane/worker/output_queue.cc) and the codecs, which see plaintext only.
//
//   recv (provided buffer, ciphertext) -> OnRecv -> Session -> plaintext input slices
//        (worker blocks) -> the codec (ProcessClientInput / ProcessUpstreamInput)
//   codec -> output queue (plaintext items) -> Flush -> Session -> wire queue
//        (ciphertext blocks) -> send/sendmsg -> OnSent
//
// The receive buffer goes back to the ring as soon as the session has read it (BoringSSL
// keeps an incomplete record itself), and plaintext items are released once encrypted,
// so a TLS connection pins no receive buffer while it waits. After the handshake the
// kernel may take over (kTLS, offload.cc): the connection then uses the plaintext paths
// unchanged. Upstream connections of clusters with tls use the same paths as clients of
// TLS listeners, with the client handshake (client_handshake.cc).
//
// The byte layer calls one hook where it used to branch on TLS. Each hook returns false
// (or does nothing) for plaintext connections and for connections kTLS took over, and
// then the caller's plaintext path applies. The layer drives the worker's machinery
// (ring, blocks, timers, stats, closing, the codecs above), so it is the worker's friend
// and holds a reference to it; the per-connection state (TlsConn) is the layer's own.
//
//   tls_layer.cc         per-connection state, the hooks' slow paths, timeouts, access log
//   server_handshake.cc  TLS listeners: accept, handshake done/failed
//   client_handshake.cc  upstreams of clusters with tls: connect, certificate failures
//   records.cc           decrypting input, encrypting output, sending ciphertext
//   offload.cc           kTLS hand-over after the handshake, control records
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "dataplane/metrics/worker_stats.h"
#include "dataplane/tls/handshake_failure.h"
#include "dataplane/transport/app_protocol.h"
#include "dataplane/transport/tls_conn.h"
#include "dataplane/worker/conn.h"
#include "dataplane/worker/slab.h"

namespace zproxy::dataplane {

class Worker;

namespace transport {

class TlsLayer {
 public:
  // `conns` is the worker's connection table: the hooks' fast path (a plaintext
  // connection) is one look at Conn::tls, inline.
  TlsLayer(Worker& worker, Slab<Conn, 1024>& conns) : w_(worker), conns_(conns) {}
  TlsLayer(const TlsLayer&) = delete;
  TlsLayer& operator=(const TlsLayer&) = delete;

  // --- Connection setup.
  // A client of a TLS listener (receive armed): starts the server session and the
  // handshake timeout, which gives way to the header timeout once the handshake is done.
  // False: out of memory (the caller counts it and closes).
  bool Accept(uint32_t conn_idx);
  // An upstream connection of a cluster with tls, just connected: starts the client
  // handshake within the connect timeout; the waiting exchange is attached once it
  // completes (or failed with a cause naming why).
  void Connect(uint32_t conn_idx);
  // At the connection's end (MaybeFreeConn): frees its TLS state, if any.
  void Release(uint32_t conn_idx);

  // --- Hooks of the byte layer (output_queue.cc, worker.cc).
  // Received bytes: ciphertext goes through the session (the caller gives the buffer
  // back at once). False: plaintext, the caller queues the buffer as input.
  bool OnRecv(uint32_t conn_idx, const char* data, size_t len) {
    if (!Userspace(conn_idx)) return false;
    Decrypt(conn_idx, data, len);
    return true;
  }
  // The output queue has bytes: they are encrypted and the ciphertext sent. False:
  // plaintext (or kTLS), the caller sends the queue itself.
  bool Flush(uint32_t conn_idx) {
    if (!Userspace(conn_idx)) return false;
    EncryptAndSend(conn_idx);
    return true;
  }
  // A send completed: `sent` bytes were ciphertext. False: they were the queue's items.
  bool OnSent(uint32_t conn_idx, size_t sent) {
    if (!Userspace(conn_idx)) return false;
    CiphertextSent(conn_idx, sent);
    return true;
  }
  // Ciphertext not yet sent: it bounds a TLS connection's output like queued items do.
  uint32_t Unsent(const Conn& c) const { return c.tls == kNil ? 0 : tls_.Get(c.tls).wire_count; }
  // The receive must stay paused: the kernel takes over first (kTLS hand-over pending).
  bool HoldsRecv(const Conn& c) const { return c.tls != kNil && tls_.Get(c.tls).offload_pending; }
  // The connection's receive has ended (multishot done or cancelled). On a TLS connection
  // the socket may be quiet enough for the kernel to take over now; true for TLS
  // connections (the tunnel hand-over waits on plaintext ones only).
  bool OnRecvStopped(uint32_t conn_idx) {
    if (conns_.Get(conn_idx).tls == kNil) return false;
    MaybeOffload(conn_idx);
    return true;
  }
  // A receive failed with `res`. On a kTLS socket EIO means the next record is not
  // application data (an alert, a TLS 1.3 ticket or KeyUpdate): handled here, true.
  bool OnRecvError(uint32_t conn_idx, int res, bool recv_ended);
  // The client's stream ended (FIN or error) before its handshake completed: counted as a
  // failed handshake, closed; true. False: no handshake in progress.
  bool OnEofInHandshake(uint32_t conn_idx);
  // The connection's timer fired during its handshake: a client's handshake failed
  // (counted, closed), an upstream's connect timed out (the handshake is the connect);
  // true. False: no handshake in progress, the timer is the caller's.
  bool OnHandshakeTimeout(uint32_t conn_idx);

  // --- What the layers above may know about the connection.
  // "https" on TLS connections, "http" otherwise (the request's scheme).
  std::string_view Scheme(const Conn& c) const { return c.tls != kNil ? "https" : "http"; }
  // What ALPN negotiated (kNone for plaintext connections and before the handshake).
  AppProtocol Protocol(const Conn& c) const {
    return c.tls == kNil ? AppProtocol::kNone : tls_.Get(c.tls).app_protocol;
  }
  // "TLSv1.3/TLS_AES_128_GCM_SHA256" for the access log ("" for plaintext connections).
  std::string_view LogField(const Conn& c, char* buf, size_t cap) const;
  // The negotiated version ("TLSv1.3") and the client's SNI; "" for plaintext.
  std::string_view Version(const Conn& c) const;
  std::string_view ServerName(const Conn& c) const;

 private:
  // True while the session owns the connection's bytes (userspace TLS); false for
  // plaintext connections and connections the kernel (kTLS) took over.
  bool Userspace(uint32_t conn_idx) const {
    const Conn& c = conns_.Get(conn_idx);
    return c.tls != kNil && tls_.Get(c.tls).mode == tls::TlsMode::kUserspace;
  }
  TlsConn& Of(const Conn& c) { return tls_.Get(c.tls); }
  // A TlsConn slot for the connection, with the context it keeps alive.
  TlsConn& Attach(Conn& c, std::shared_ptr<const void> context);

  // --- records.cc
  void Decrypt(uint32_t conn_idx, const char* data, size_t len);
  void EncryptAndSend(uint32_t conn_idx);
  void CiphertextSent(uint32_t conn_idx, size_t sent);
  // Fatal error after the handshake (bad record, out of memory): close.
  void Abort(uint32_t conn_idx);

  // --- server_handshake.cc
  void HandshakeDone(uint32_t conn_idx);
  // Counts the failed handshake, sends the alert BoringSSL queued (if any), closes.
  void HandshakeFailed(uint32_t conn_idx, tls::HandshakeFailure why);

  // --- client_handshake.cc
  void UpstreamReady(uint32_t conn_idx);
  void UpstreamFailed(uint32_t conn_idx, ErrorCause cause);
  // The upstream's handshake failed: the cause from the certificate check (or handshake).
  void UpstreamRefused(uint32_t conn_idx);
  // Keeps a resumable session the upstream just issued for the next connection to it.
  void UpstreamKeepSession(uint32_t conn_idx);

  // --- offload.cc
  void MaybeOffload(uint32_t conn_idx);
  // kTLS: recv() failed with EIO, the next record is not application data.
  void ControlRecord(uint32_t conn_idx, bool recv_ended);

  Worker& w_;
  Slab<Conn, 1024>& conns_;
  Slab<TlsConn, 64> tls_;
};

}  // namespace transport
}  // namespace zproxy::dataplane
