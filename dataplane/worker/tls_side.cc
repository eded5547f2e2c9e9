// TLS listeners: the session sits between the receive/send paths and the HTTP code.
//
//   recv (provided buffer, ciphertext) -> TlsOnRecv -> Session -> plaintext input slices
//        (worker blocks) -> ProcessClientInput (the ordinary HTTP/1.1 client side)
//   HTTP code -> output queue (plaintext items) -> TlsFlush -> Session -> wire queue
//        (ciphertext blocks) -> send/sendmsg -> TlsOnSent
//
// The receive buffer goes back to the ring as soon as the session has read it (BoringSSL
// keeps an incomplete record itself), and plaintext items are released once encrypted,
// so a TLS connection pins no receive buffer while it waits. After the handshake the
// kernel may take over (kTLS, see dataplane/tls/kernel_offload.h): the connection then
// uses the plaintext paths unchanged (tls_offload.cc). Connections to upstreams of clusters
// with tls use the same paths as clients of TLS listeners (tls_upstream.cc).
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "dataplane/tls/kernel_offload.h"
#include "dataplane/tls/server_context.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

using tls::HandshakeFailure;
using tls::Session;

bool Worker::TlsAccept(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  const auto& context = snap_->listeners[c.owner].tls;
  uint32_t t_idx = tls_conns_.Alloc();
  TlsConn& t = tls_conns_.Get(t_idx);
  t.blocks = &blocks_;
  t.context = context;
  if (!t.session.Start(*context, &t)) {
    t.Reset();
    tls_conns_.Free(t_idx);
    return false;
  }
  c.tls = t_idx;
  timers_.Arm(t_tls_handshake_[c.owner], conn_idx, NowMs());
  return true;
}

std::string_view Worker::TlsLogField(const Conn& c, char* buf, size_t cap) {
  if (c.tls == kNil) return {};
  const TlsConn& t = tls_conns_.Get(c.tls);
  int n = snprintf(buf, cap, "%s/%s", t.version, t.cipher);
  return std::string_view(buf, n < 0 ? 0 : std::min<size_t>(static_cast<size_t>(n), cap - 1));
}

void Worker::TlsRelease(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.tls == kNil) return;
  TlsConn& t = tls_conns_.Get(c.tls);
  t.FreeWire();
  t.Reset();
  tls_conns_.Free(c.tls);
  c.tls = kNil;
}

void Worker::TlsOnRecv(uint32_t conn_idx, const char* data, size_t len) {
  Conn& c = conns_.Get(conn_idx);
  TlsConn& t = tls_conns_.Get(c.tls);
  Session& s = t.session;
  s.SetInput(data, len);
  const bool client = c.kind == ConnKind::kClient;
  if (!s.established()) {
    Session::Result r = s.Handshake();
    if (r == Session::Result::kFailed) {
      if (client) {
        TlsHandshakeFailed(conn_idx, s.failure());
      } else {
        TlsUpstreamRefused(conn_idx);
      }
      return;
    }
    if (r != Session::Result::kOk) {
      TlsFlush(conn_idx);  // our next flight
      return;
    }
    if (client) {
      TlsHandshakeDone(conn_idx);
    } else {
      TlsUpstreamKeepSession(conn_idx);  // a TLS 1.2 ticket comes with the handshake
      TlsFlush(conn_idx);
      TlsUpstreamReady(conn_idx);
    }
    if (conns_.Get(conn_idx).flags & kClosing) return;
  }
  // Decrypt everything the window holds. A record's plaintext is at most 16 KiB; large
  // blocks are filled to the brim, and small results move to a small block so a short
  // request does not hold a large one while it waits.
  bool produced = false;
  Session::Result r = Session::Result::kOk;
  while (r == Session::Result::kOk) {
    uint32_t b = blocks_.AllocLarge();
    char* p = blocks_.Data(b);
    size_t cap = blocks_.Capacity(b);
    size_t filled = 0;
    while (filled < cap) {
      size_t n = 0;
      r = s.Read(p + filled, cap - filled, &n);
      if (r != Session::Result::kOk) break;
      filled += n;
    }
    if (filled == 0) {
      blocks_.Free(b);
      break;
    }
    if (filled <= BlockPool::kSmallSize) {
      uint32_t small = blocks_.Alloc(filled);
      memcpy(blocks_.Data(small), p, filled);
      blocks_.Free(b);
      b = small;
    }
    InPushBack(Io(conn_idx), InSlice{b, 0, static_cast<uint32_t>(filled), true});
    produced = true;
  }
  if (r == Session::Result::kFailed) {
    TlsAbort(conn_idx);
    return;
  }
  // Reading can produce output (a TLS 1.3 KeyUpdate answer); send it. An upstream's TLS
  // 1.3 tickets arrive after its handshake, with the response.
  if (!client) TlsUpstreamKeepSession(conn_idx);
  if (t.wire_count > 0) TlsFlush(conn_idx);
  if (produced) {
    if (client) {
      ProcessClientInput(conn_idx);
    } else {
      ProcessUpstreamInput(conn_idx);
    }
  }
  if (r == Session::Result::kClosed) {
    // close_notify: the peer's FIN.
    Conn& c2 = conns_.Get(conn_idx);
    if (c2.flags & kClosing) return;
    if (client) {
      OnClientEof(conn_idx, 0);
    } else {
      OnUpstreamEof(conn_idx, 0);
    }
  }
}

void Worker::TlsHandshakeDone(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  TlsConn& t = tls_conns_.Get(c.tls);
  stats_.tls_handshakes[t.session.resumed() ? 1 : 0].Add();
  t.version = t.session.version();
  t.cipher = t.session.cipher();
  // From here on the ordinary request head timeout applies.
  timers_.Arm(t_client_header_[c.owner], conn_idx, NowMs());
  TlsFlush(conn_idx);  // Finished / NewSessionTicket
  // kTLS needs a regular descriptor (io_uring fixed files are not in the fd table) and
  // a quiet socket: no receive armed (a completion in flight would carry ciphertext),
  // nothing unsent, nothing buffered in the session.
  if (!tls::KernelOffloadAvailable()) {
    stats_.tls_offload[static_cast<int>(tls::OffloadOutcome::kNoKernelSupport)].Add();
  } else if (c.flags & kFixedFile) {
    stats_.tls_offload[static_cast<int>(tls::OffloadOutcome::kFixedFile)].Add();
  } else {
    t.offload_pending = true;
    PauseRecv(conn_idx);
    TlsMaybeOffload(conn_idx);
    return;
  }
  stats_.tls_connections[static_cast<int>(tls::TlsMode::kUserspace)].Add();
}

void Worker::TlsFlush(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & (kClosing | kConnecting)) return;
  TlsConn& t = tls_conns_.Get(c.tls);
  Session& s = t.session;
  if (s.established() && c.io != kNil) {
    ConnIo& io = ios_.Get(c.io);
    // Encrypt one record's worth at a time while the wire queue has room; the rest
    // waits as plaintext (and the HTTP code sees a full queue: backpressure).
    while (io.out_count > 0 && t.wire_count < kWireLimit) {
      OutItem& it = io.out[io.out_head];
      uint32_t n = std::min(it.len, kTlsRecordPlain);
      if (n > 0 && s.Write(it.data, n) != Session::Result::kOk) {
        TlsAbort(conn_idx);
        return;
      }
      it.data += n;
      it.len -= n;
      if (it.len == 0) {
        ReleaseItem(it);
        io.out_head = (io.out_head + 1) % kOutCap;
        io.out_count--;
      }
    }
    // Closing after this response: end the TLS stream properly, so the client can tell
    // a complete close-delimited response from a truncated one.
    if (io.out_count == 0 && (c.flags & kCloseAfterSend) && c.exchange == kNil &&
        c.kind == ConnKind::kClient) {
      s.CloseNotify();
    }
  }
  if ((c.flags & kSendInflight) || t.wire_count == 0) return;
  ConnIo& io = Io(conn_idx);  // its iovec and msghdr carry the send
  uint32_t n = std::min<uint32_t>(t.wire_count, kMaxIov);
  for (uint32_t i = 0; i < n; i++) {
    WireChunk& w = t.WireAt(i);
    io.iov[i].iov_base = blocks_.Data(w.block) + w.off;
    io.iov[i].iov_len = w.len;
  }
  io_uring_sqe* sqe = ring_.Sqe();
  if (n == 1) {
    io_uring_prep_send(sqe, c.fd, io.iov[0].iov_base, io.iov[0].iov_len, MSG_NOSIGNAL);
  } else {
    io.msg = msghdr{};
    io.msg.msg_iov = io.iov;
    io.msg.msg_iovlen = n;
    io_uring_prep_sendmsg(sqe, c.fd, &io.msg, MSG_NOSIGNAL);
  }
  io.zc_bid = 0;
  io_uring_sqe_set_data64(sqe, Ud(io::Op::kSend, conn_idx));
  if (c.flags & kFixedFile) sqe->flags |= IOSQE_FIXED_FILE;
  stats_.send_plain.Add();
  c.flags |= kSendInflight;
  c.inflight++;
}

void Worker::TlsOnSent(uint32_t conn_idx, size_t sent) {
  Conn& c = conns_.Get(conn_idx);
  TlsConn& t = tls_conns_.Get(c.tls);
  t.Consume(sent);
  // Room in the wire queue again: encrypt what waits (OnSend flushes when anything is
  // left), and see whether the socket is quiet enough for the kernel to take over.
  if (t.offload_pending) TlsMaybeOffload(conn_idx);
}

void Worker::TlsHandshakeFailed(uint32_t conn_idx, HandshakeFailure why) {
  stats_.tls_handshake_failures[static_cast<int>(why)].Add();
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & kClosing) return;
  TlsConn& t = tls_conns_.Get(c.tls);
  timers_.Disarm(conn_idx);
  DropInput(conn_idx);
  if (t.wire_count == 0 && !(c.flags & kSendInflight)) {
    CloseConn(conn_idx);
    return;
  }
  // BoringSSL queued an alert: send it, then close (nothing more is read).
  c.flags |= kCloseAfterSend;
  PauseRecv(conn_idx);
  TlsFlush(conn_idx);
}

void Worker::TlsAbort(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & kClosing) return;
  stats_.tls_errors.Add();
  if (c.exchange == kNil) {
    CloseConn(conn_idx);
  } else if (c.kind == ConnKind::kUpstream) {
    UpstreamFailed(c.exchange, ErrorCause::kUpstreamClosed, false);
  } else {
    AbortExchange(c.exchange, true);
  }
}

}  // namespace zproxy::dataplane
