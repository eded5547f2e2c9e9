// TLS records in userspace: received ciphertext is decrypted into plaintext input slices
// for the codec above, the output queue's plaintext is encrypted into the wire queue just
// before sending, and the wire queue goes out with send/sendmsg, one send in flight per
// socket like plaintext output.
#include <sys/socket.h>

#include <cstring>

#include "dataplane/transport/tls_layer.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane::transport {

using tls::Session;

void TlsLayer::Decrypt(uint32_t conn_idx, const char* data, size_t len) {
  Conn& c = conns_.Get(conn_idx);
  // Counted as received from clients for both sides, as before the layer existed.
  w_.stats_.bytes_from_clients.Add(static_cast<uint64_t>(len));
  TlsConn& t = Of(c);
  Session& s = t.session;
  s.SetInput(data, len);
  const bool client = c.kind == ConnKind::kClient;
  if (!s.established()) {
    Session::Result r = s.Handshake();
    if (r == Session::Result::kFailed) {
      if (client) {
        HandshakeFailed(conn_idx, s.failure());
      } else {
        UpstreamRefused(conn_idx);
      }
      return;
    }
    if (r != Session::Result::kOk) {
      EncryptAndSend(conn_idx);  // our next flight
      return;
    }
    if (client) {
      HandshakeDone(conn_idx);
    } else {
      UpstreamKeepSession(conn_idx);  // a TLS 1.2 ticket comes with the handshake
      EncryptAndSend(conn_idx);
      UpstreamReady(conn_idx);
    }
    if (conns_.Get(conn_idx).flags & kClosing) return;
  }
  // Decrypt everything the window holds. A record's plaintext is at most 16 KiB; large
  // blocks are filled to the brim, and small results move to a small block so a short
  // request does not hold a large one while it waits.
  BlockPool& blocks = w_.blocks_;
  bool produced = false;
  Session::Result r = Session::Result::kOk;
  while (r == Session::Result::kOk) {
    uint32_t b = blocks.AllocLarge();
    char* p = blocks.Data(b);
    size_t cap = blocks.Capacity(b);
    size_t filled = 0;
    while (filled < cap) {
      size_t n = 0;
      r = s.Read(p + filled, cap - filled, &n);
      if (r != Session::Result::kOk) break;
      filled += n;
    }
    if (filled == 0) {
      blocks.Free(b);
      break;
    }
    if (filled <= BlockPool::kSmallSize) {
      uint32_t small = blocks.Alloc(filled);
      memcpy(blocks.Data(small), p, filled);
      blocks.Free(b);
      b = small;
    }
    w_.InPushBack(w_.Io(conn_idx), InSlice{b, 0, static_cast<uint32_t>(filled), true});
    produced = true;
  }
  if (r == Session::Result::kFailed) {
    Abort(conn_idx);
    return;
  }
  // Reading can produce output (a TLS 1.3 KeyUpdate answer); send it. An upstream's TLS
  // 1.3 tickets arrive after its handshake, with the response.
  if (!client) UpstreamKeepSession(conn_idx);
  if (t.wire_count > 0) EncryptAndSend(conn_idx);
  if (produced) {
    if (client) {
      w_.ProcessClientInput(conn_idx);
    } else {
      w_.ProcessUpstreamInput(conn_idx);
    }
  }
  if (r == Session::Result::kClosed) {
    // close_notify: the peer's FIN.
    Conn& c2 = conns_.Get(conn_idx);
    if (c2.flags & kClosing) return;
    if (client) {
      w_.OnClientEof(conn_idx, 0);
    } else {
      w_.OnUpstreamEof(conn_idx, 0);
    }
  }
}

void TlsLayer::EncryptAndSend(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & (kClosing | kConnecting)) return;
  TlsConn& t = Of(c);
  Session& s = t.session;
  if (s.established() && c.io != kNil) {
    ConnIo& io = w_.ios_.Get(c.io);
    // Encrypt one record's worth at a time while the wire queue has room; the rest
    // waits as plaintext (and the codec sees a full queue: backpressure).
    while (io.out_count > 0 && t.wire_count < kWireLimit) {
      OutItem& it = io.out[io.out_head];
      uint32_t n = std::min(it.len, kTlsRecordPlain);
      if (n > 0 && s.Write(it.data, n) != Session::Result::kOk) {
        Abort(conn_idx);
        return;
      }
      it.data += n;
      it.len -= n;
      if (it.len == 0) {
        w_.ReleaseItem(it);
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
  ConnIo& io = w_.Io(conn_idx);  // its iovec and msghdr carry the send
  uint32_t n = std::min<uint32_t>(t.wire_count, kMaxIov);
  for (uint32_t i = 0; i < n; i++) {
    WireChunk& wc = t.WireAt(i);
    io.iov[i].iov_base = w_.blocks_.Data(wc.block) + wc.off;
    io.iov[i].iov_len = wc.len;
  }
  io_uring_sqe* sqe = w_.ring_.Sqe();
  if (n == 1) {
    io_uring_prep_send(sqe, c.fd, io.iov[0].iov_base, io.iov[0].iov_len, MSG_NOSIGNAL);
  } else {
    io.msg = msghdr{};
    io.msg.msg_iov = io.iov;
    io.msg.msg_iovlen = n;
    io_uring_prep_sendmsg(sqe, c.fd, &io.msg, MSG_NOSIGNAL);
  }
  io.zc_bid = 0;
  io_uring_sqe_set_data64(sqe, w_.Ud(io::Op::kSend, conn_idx));
  if (c.flags & kFixedFile) sqe->flags |= IOSQE_FIXED_FILE;
  w_.stats_.send_plain.Add();
  c.flags |= kSendInflight;
  c.inflight++;
}

void TlsLayer::CiphertextSent(uint32_t conn_idx, size_t sent) {
  TlsConn& t = Of(conns_.Get(conn_idx));
  t.Consume(sent);
  // Room in the wire queue again: encrypt what waits (OnSend flushes when anything is
  // left), and see whether the socket is quiet enough for the kernel to take over.
  if (t.offload_pending) MaybeOffload(conn_idx);
}

void TlsLayer::Abort(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & kClosing) return;
  w_.stats_.tls_errors.Add();
  if (c.exchange == kNil) {
    w_.CloseConn(conn_idx);
  } else if (c.kind == ConnKind::kUpstream) {
    w_.UpstreamFailed(c.exchange, ErrorCause::kUpstreamClosed, false);
  } else {
    w_.AbortExchange(c.exchange, true);
  }
}

}  // namespace zproxy::dataplane::transport
