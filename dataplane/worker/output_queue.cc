// Per-socket byte movement: multishot receive into provided buffers, input slices,
// output queues with one send in flight per socket, SEND_ZC for large buffers, and
// backpressure (a reader is paused while its peer cannot keep up).
#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {
namespace {

// SEND_ZC results that mean "zero-copy is not possible here", not "this connection
// failed": pinning the pages was refused (ENOMEM: RLIMIT_MEMLOCK, charged when the ring
// was created without CAP_IPC_LOCK; ENOBUFS: socket option memory) or the socket does not
// take zero-copy (EOPNOTSUPP). A negative result means no byte of the request was sent
// (after partial progress the kernel completes with the byte count instead).
bool ZcRefused(int res) { return res == -ENOMEM || res == -ENOBUFS || res == -EOPNOTSUPP; }

}  // namespace

ConnIo& Worker::Io(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.io == kNil) c.io = ios_.Alloc();
  return ios_.Get(c.io);
}

uint32_t Worker::OutCount(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  uint32_t n = c.io == kNil ? 0 : ios_.Get(c.io).out_count;
  // Ciphertext not yet sent counts too: it is what bounds a TLS connection's output.
  return n + tls_.Unsent(c);
}

bool Worker::OutHasRoom(uint32_t conn_idx) { return OutCount(conn_idx) < kOutLimit; }

size_t Worker::InBytes(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.io == kNil) return 0;
  ConnIo& io = ios_.Get(c.io);
  size_t n = 0;
  for (uint32_t i = io.in_head; i != kNil; i = slices_.Get(i).next) n += slices_.Get(i).slice.len;
  return n;
}

void Worker::BufUnref(uint16_t bid) {
  if (--buf_refs_[bid] == 0) {
    bufs_.Recycle(bid);
    recycled_++;
  }
}

void Worker::RearmEnobufsWaiters() {
  // ArmRecv only queues SQEs, so the list cannot grow while it is walked.
  for (auto [idx, gen] : enobufs_waiters_) {
    Conn& c = conns_.Get(idx);
    if (c.gen == gen && !(c.flags & kClosing)) ArmRecv(idx);
  }
  enobufs_waiters_.clear();  // keeps its capacity: no allocation in steady state
}

void Worker::ReleaseItem(const OutItem& item) {
  if (item.owner == ItemOwner::kBuffer) {
    BufUnref(static_cast<uint16_t>(item.ref));
  } else if (item.owner == ItemOwner::kBlock) {
    blocks_.Free(item.ref);
  }
}

void Worker::ArmRecv(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & (kRecvArmed | kClosing | kRecvPaused)) return;
  // A sockmap/splice tunnel's bytes are the kernel's: a receive would take them (a late
  // re-arm, e.g. after ENOBUFS, must not). Copy-mode tunnels read as usual.
  if ((c.flags & kPassthrough) && c.exchange != kNil &&
      exchanges_.Get(c.exchange).tunnel.pass_mode != static_cast<uint8_t>(PassMode::kCopy)) {
    return;
  }
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_recv_multishot(sqe, c.fd, nullptr, 0, 0);
  if (c.flags & kFixedFile) sqe->flags |= IOSQE_FIXED_FILE;
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = bufs_.group_id();
  io_uring_sqe_set_data64(sqe, Ud(io::Op::kRecv, conn_idx));
  c.flags |= kRecvArmed;
  c.flags &= ~kCancelSent;
  c.inflight++;
}

void Worker::PauseRecv(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & kRecvPaused) return;
  c.flags |= kRecvPaused;
  if ((c.flags & kRecvArmed) && !(c.flags & kCancelSent)) {
    io_uring_sqe* sqe = ring_.Sqe();
    io_uring_prep_cancel64(sqe, Ud(io::Op::kRecv, conn_idx), 0);
    io_uring_sqe_set_data64(sqe, io::UserData{io::Op::kCancel, 0, 0, 0}.Pack());
    c.flags |= kCancelSent;
  }
}

void Worker::MaybeResumeRecv(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (!(c.flags & kRecvPaused) || (c.flags & kClosing)) return;
  if (c.io != kNil && ios_.Get(c.io).in_count >= kInResumeAt) return;
  if (tls_.HoldsRecv(c)) return;  // kTLS takes over first
  c.flags &= ~kRecvPaused;
  ArmRecv(conn_idx);
}

void Worker::OnRecv(uint32_t conn_idx, io_uring_cqe* cqe) {
  Conn& c = conns_.Get(conn_idx);
  bool more = cqe->flags & IORING_CQE_F_MORE;
  if (!more) {
    c.flags &= ~kRecvArmed;
    c.inflight--;
  }
  int res = cqe->res;
  if (res > 0) {
    uint16_t bid = static_cast<uint16_t>(cqe->flags >> 16);
    bufs_.OnConsumed();
    buf_refs_[bid] = 1;
    if (c.flags & (kClosing | kLingering)) {
      BufUnref(bid);
      MaybeFreeConn(conn_idx);
      return;
    }
    if (tls_.OnRecv(conn_idx, bufs_.Data(bid), static_cast<size_t>(res))) {
      // Ciphertext: the session read all of it, so the buffer goes back at once.
      BufUnref(bid);
    } else if ((c.flags & kRecvPaused) && static_cast<uint32_t>(res) <= blocks_.large_size()) {
      // Bytes that arrived after the receive was paused (the multishot drains what the
      // socket held before the cancel lands): copied out, so a stalled peer pins no
      // provided buffer beyond its pause threshold. Buffers are the worker's shared,
      // fixed resource; a few stalled streams must not starve every other connection.
      uint32_t b = blocks_.Alloc(static_cast<size_t>(res));
      memcpy(blocks_.Data(b), bufs_.Data(bid), static_cast<size_t>(res));
      BufUnref(bid);
      stats_.paused_recv_copies.Add();
      ConnIo& io = Io(conn_idx);
      InPushBack(io, InSlice{b, 0, static_cast<uint32_t>(res), true});
      // As for any receive: a full one may have stopped inside an skb, which the sockmap
      // hand-over must know (tunnel/upgraded.cc; a stale flag corrupted 1 MB tunnels).
      io.last_recv_full = static_cast<uint32_t>(res) == bufs_.buffer_size();
      if (c.kind == ConnKind::kClient) {
        stats_.bytes_from_clients.Add(static_cast<uint64_t>(res));
        ProcessClientInput(conn_idx);
      } else {
        ProcessUpstreamInput(conn_idx);
      }
    } else {
      ConnIo& io = Io(conn_idx);
      InPushBack(io, InSlice{bid, 0, static_cast<uint32_t>(res), false});
      io.last_recv_full = static_cast<uint32_t>(res) == bufs_.buffer_size();
      if (c.kind == ConnKind::kClient) {
        stats_.bytes_from_clients.Add(static_cast<uint64_t>(res));
        ProcessClientInput(conn_idx);
      } else {
        ProcessUpstreamInput(conn_idx);
      }
    }
    // The handlers may have closed the connection; re-check before re-arming.
    Conn& c2 = conns_.Get(conn_idx);
    if (c2.gen == io::UserData::Unpack(cqe->user_data).gen && !(c2.flags & kClosing)) {
      if (c2.io != kNil && ios_.Get(c2.io).in_count >= kInPauseAt) PauseRecv(conn_idx);
      if (!more) ArmRecv(conn_idx);
      if (!more) tls_.OnRecvStopped(conn_idx);
    }
    return;
  }
  if (c.flags & kClosing) {
    MaybeFreeConn(conn_idx);
    return;
  }
  if (c.flags & kLingering) {
    if (res == -ENOBUFS || res == -ECANCELED) {
      if (!more) ArmRecv(conn_idx);
    } else {
      CloseConn(conn_idx);  // EOF or error: the client is done
    }
    return;
  }
  if (res == -ENOBUFS) {
    // The provided-buffer ring ran dry: not the connection's fault. Re-arm; the buffers
    // come back as sends complete.
    stats_.enobufs_rearms.Add();
    bufs_.OnExhausted();
    if (!more) {
      enobufs_waiters_.emplace_back(conn_idx, c.gen);
      if (c.flags & kRecvPaused) tunnels_.RecvStopped(conn_idx);
    }
    return;
  }
  if (res == -ECANCELED) {
    // Paused for backpressure (or closing): re-armed by MaybeResumeRecv.
    c.flags &= ~kCancelSent;
    if (!(c.flags & kRecvPaused)) {
      ArmRecv(conn_idx);
    } else if (!tls_.OnRecvStopped(conn_idx)) {
      tunnels_.RecvStopped(conn_idx);
    }
    return;
  }
  if (tls_.OnRecvError(conn_idx, res, !more)) return;
  // EOF (0) or error.
  if (c.kind == ConnKind::kClient) {
    OnClientEof(conn_idx, res);
  } else {
    OnUpstreamEof(conn_idx, res);
  }
}

void Worker::OnClientEof(uint32_t conn_idx, int res) {
  Conn& c = conns_.Get(conn_idx);
  if (tls_.OnEofInHandshake(conn_idx)) return;
  if (c.exchange != kNil && exchanges_.Get(c.exchange).tunnel.active) {
    tunnels_.OnClientEof(c.exchange, res);
    return;
  }
  if (c.exchange != kNil) {
    Exchange& ex = exchanges_.Get(c.exchange);
    if (res == 0 && ex.connect) {
      // CONNECT still connecting: the client's bytes so far and its FIN go through the
      // tunnel once it is up (nothing is dropped, the FIN is forwarded when drained).
      ex.tunnel.client_eof = true;
      return;
    }
    if (res == 0 && ex.req_done) {
      // Half-close after a complete request: the client may still read the response
      // (HTTP/1.1 permits shutting down the write side). Finish, then close.
      c.flags |= kCloseAfterSend;
      ex.down.set_keep_alive(false);
      return;
    }
    stats_.CountError(ErrorCause::kClientReset);
    AbortExchange(c.exchange, true);
  } else {
    CloseConn(conn_idx);
  }
}

// Consumes n bytes from the front of the connection's input slices.
void Worker::ConsumeIn(uint32_t conn_idx, size_t n) {
  ConnIo& io = Io(conn_idx);
  while (n > 0 && io.in_count > 0) {
    InSlice& s = InFront(io);
    size_t take = std::min<size_t>(n, s.len);
    s.off += static_cast<uint32_t>(take);
    s.len -= static_cast<uint32_t>(take);
    n -= take;
    if (s.len == 0) {
      ReleaseSlice(s);
      InPopFront(io);
    }
  }
}

void Worker::DropInput(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.io == kNil) return;
  ConnIo& io = ios_.Get(c.io);
  while (io.in_count > 0) {
    ReleaseSlice(InFront(io));
    InPopFront(io);
  }
}

void Worker::CoalesceInput(uint32_t conn_idx) {
  ConnIo& io = Io(conn_idx);
  if (io.in_count < 2) return;
  InSlice merged{0, 0, 0, true};
  InSlice& front = InFront(io);
  char* dst;
  if (front.is_block) {
    merged = front;
    dst = blocks_.Data(merged.ref);
    if (merged.off != 0) {
      memmove(dst, dst + merged.off, merged.len);
      merged.off = 0;
    }
    InPopFront(io);
  } else {
    merged.ref = blocks_.AllocLarge();
    dst = blocks_.Data(merged.ref);
  }
  uint32_t cap = blocks_.large_size();
  while (io.in_count > 0 && merged.len < cap) {
    InSlice& s = InFront(io);
    uint32_t take = std::min(s.len, cap - merged.len);
    memcpy(dst + merged.len, SliceData(s), take);
    merged.len += take;
    s.off += take;
    s.len -= take;
    if (s.len != 0) break;
    ReleaseSlice(s);
    InPopFront(io);
  }
  InPushFront(io, merged);
}

void Worker::InPushBack(ConnIo& io, const InSlice& s) {
  uint32_t n = slices_.Alloc();
  slices_.Get(n).slice = s;
  if (io.in_tail != kNil)
    slices_.Get(io.in_tail).next = n;
  else
    io.in_head = n;
  io.in_tail = n;
  io.in_count++;
}

void Worker::InPushFront(ConnIo& io, const InSlice& s) {
  uint32_t n = slices_.Alloc();
  slices_.Get(n).slice = s;
  slices_.Get(n).next = io.in_head;
  io.in_head = n;
  if (io.in_tail == kNil) io.in_tail = n;
  io.in_count++;
}

void Worker::InPopFront(ConnIo& io) {
  uint32_t n = io.in_head;
  io.in_head = slices_.Get(n).next;
  if (io.in_head == kNil) io.in_tail = kNil;
  io.in_count--;
  slices_.Free(n);
}

bool Worker::QueueFromSlice(uint32_t to, const InSlice& s, std::string_view data) {
  if (!s.is_block) {
    return QueueOut(to, data.data(), static_cast<uint32_t>(data.size()), ItemOwner::kBuffer, s.ref);
  }
  // Blocks are not reference counted (rare path: a fragmented head); copy.
  uint32_t b = blocks_.Alloc(data.size());
  memcpy(blocks_.Data(b), data.data(), data.size());
  return QueueOut(to, blocks_.Data(b), static_cast<uint32_t>(data.size()), ItemOwner::kBlock, b);
}

bool Worker::ForwardFront(uint32_t from, uint32_t to, size_t n) {
  ConnIo& io = Io(from);
  const InSlice& s = InFront(io);
  bool ok = QueueFromSlice(to, s, std::string_view(SliceData(s), n));
  ConsumeIn(from, n);
  return ok;
}

// An idle connection keeps no queue memory: that is most of the memory per connection.
void Worker::ReleaseIoIfIdle(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  // A connect in flight: the kernel may still read the address kept in its ConnIo.
  if (c.io == kNil || c.exchange != kNil || (c.flags & (kSendInflight | kClosing | kConnecting))) {
    return;
  }
  if (tls_.Unsent(c) != 0) return;
  ConnIo& io = ios_.Get(c.io);
  if (io.out_count != 0 || io.in_count != 0) return;
  ios_.Free(c.io);
  c.io = kNil;
}

// A completed connect's ConnIo, which held its address (ConnIo::connect_to), goes back to
// the pool unless bytes were queued meanwhile: a pass-through tunnel keeps none.
void Worker::ReleaseConnectIo(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.io == kNil || (c.flags & kSendInflight) || tls_.Unsent(c) != 0) return;
  ConnIo& io = ios_.Get(c.io);
  if (io.out_count != 0 || io.in_count != 0) return;
  ios_.Free(c.io);
  c.io = kNil;
}

bool Worker::QueueOut(uint32_t conn_idx, const char* data, uint32_t len, ItemOwner owner,
                      uint32_t ref) {
  ConnIo& io = Io(conn_idx);
  if (io.out_count == kOutCap) {
    ReleaseItem(OutItem{data, len, owner, ref});
    return false;
  }
  if (owner == ItemOwner::kBuffer) BufRef(static_cast<uint16_t>(ref));
  io.out[(io.out_head + io.out_count) % kOutCap] = OutItem{data, len, owner, ref};
  io.out_count++;
  return true;
}

void Worker::Flush(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (tls_.Flush(conn_idx)) return;  // userspace TLS: encrypted and sent by the layer
  if ((c.flags & (kSendInflight | kConnecting)) || c.io == kNil) return;
  if (c.flags & kClosing) return;
  ConnIo& io = ios_.Get(c.io);
  if (io.out_count == 0) return;
  io_uring_sqe* sqe = ring_.Sqe();
  const OutItem& first = io.out[io.out_head];
  uint32_t zc_threshold = snap_->send_zc_threshold;
  // A large received buffer goes alone as SEND_ZC (never heads: those are small, and a
  // small SEND_ZC can wait for a delayed ACK); everything else is batched into sendmsg.
  // Not on kTLS sockets: the kernel's TLS layer does not take zero-copy sends.
  // Not after the kernel refused zero-copy for this item, nor once the worker gave up on it.
  bool zc = ring_.features().send_zc && zc_threshold != 0 && first.owner == ItemOwner::kBuffer &&
            first.len >= zc_threshold && c.tls == kNil && !zc_off_ && !io.zc_retry_plain;
  io.zc_retry_plain = false;
  if (io.out_count == 1 || zc) {
    if (zc) {
      io_uring_prep_send_zc(sqe, c.fd, first.data, first.len, MSG_NOSIGNAL, 0);
      uint16_t bid = static_cast<uint16_t>(first.ref);
      BufRef(bid);  // held until the NOTIF completion
      io::UserData ud{io::Op::kSendZc, conn_idx, c.gen, static_cast<uint16_t>(bid + 1)};
      io.zc_bid = static_cast<uint16_t>(bid + 1);
      io_uring_sqe_set_data64(sqe, ud.Pack());
      stats_.send_zc.Add();
    } else {
      io_uring_prep_send(sqe, c.fd, first.data, first.len, MSG_NOSIGNAL);
      io.zc_bid = 0;
      io_uring_sqe_set_data64(sqe, Ud(io::Op::kSend, conn_idx));
      stats_.send_plain.Add();
    }
  } else {
    uint32_t n = std::min<uint32_t>(io.out_count, kMaxIov);
    for (uint32_t i = 0; i < n; i++) {
      const OutItem& it = io.OutAt(i);
      io.iov[i].iov_base = const_cast<char*>(it.data);
      io.iov[i].iov_len = it.len;
    }
    io.msg = msghdr{};
    io.msg.msg_iov = io.iov;
    io.msg.msg_iovlen = n;
    io_uring_prep_sendmsg(sqe, c.fd, &io.msg, MSG_NOSIGNAL);
    io.zc_bid = 0;
    io_uring_sqe_set_data64(sqe, Ud(io::Op::kSend, conn_idx));
    stats_.send_plain.Add();
  }
  if (c.flags & kFixedFile) sqe->flags |= IOSQE_FIXED_FILE;
  c.flags |= kSendInflight;
  c.inflight++;
}

void Worker::OnZcRefused(uint32_t conn_idx, int res) {
  stats_.send_zc_fallbacks.Add();
  if (!zc_off_ && ++zc_refusals_ >= kZcRefusalsBeforeOff) {
    zc_off_ = true;
    stats_.send_zc_off.Add();
    ZLOG_WARN(
        "worker %u: fallback: the kernel refused SEND_ZC %u times (last: %s%s); this worker "
        "uses plain send from now on",
        options_.index, zc_refusals_, strerror(-res),
        res == -ENOMEM ? ": pinned pages over RLIMIT_MEMLOCK, a ring created without "
                         "CAP_IPC_LOCK; raise the limit or keep the capability at start"
                       : "");
  }
  // The queue is untouched (nothing was consumed): the front item goes again, plainly.
  // The buffer stays referenced by the refused send until its NOTIF (Dispatch).
  ios_.Get(conns_.Get(conn_idx).io).zc_retry_plain = true;
  Flush(conn_idx);
}

void Worker::OnSend(uint32_t conn_idx, int res, bool zc) {
  Conn& c = conns_.Get(conn_idx);
  c.inflight--;
  c.flags &= ~kSendInflight;
  ConnIo& io = ios_.Get(c.io);
  if (c.flags & kClosing) {
    MaybeFreeConn(conn_idx);
    return;
  }
  if (zc && ZcRefused(res)) {
    OnZcRefused(conn_idx, res);
    return;
  }
  if (res < 0) {
    // Peer gone (EPIPE/ECONNRESET), cancelled, or another send error: the exchange cannot
    // complete. A client whose bytes could not all be sent gets a reset, not a FIN: a
    // response framed by the close (or its last bytes after the exchange finished) must
    // not look complete.
    if (c.kind == ConnKind::kClient) ResetOnClose(conn_idx);
    if (c.exchange != kNil) {
      if (c.kind == ConnKind::kClient) stats_.CountError(ErrorCause::kClientReset);
      if (c.kind == ConnKind::kUpstream) {
        UpstreamFailed(c.exchange, ErrorCause::kUpstreamClosed, false);
      } else {
        AbortExchange(c.exchange, true);
      }
    } else {
      CloseConn(conn_idx);
    }
    return;
  }
  size_t sent = static_cast<size_t>(res);
  if (c.kind == ConnKind::kClient) stats_.bytes_to_clients.Add(sent);
  if (zc) stats_.send_zc_bytes.Add(sent);
  if (tls_.OnSent(conn_idx, sent)) {
    sent = 0;  // ciphertext: the plaintext items were released when they were encrypted
  }
  while (sent > 0 && io.out_count > 0) {
    OutItem& it = io.out[io.out_head];
    if (sent >= it.len) {
      sent -= it.len;
      ReleaseItem(it);
      io.out_head = (io.out_head + 1) % kOutCap;
      io.out_count--;
    } else {
      it.data += sent;
      it.len -= static_cast<uint32_t>(sent);
      sent = 0;
    }
  }
  // Room again: move more bytes from the peer into this queue.
  if (c.kind == ConnKind::kClient && c.h2 != 0) {
    h2_.Wake(conn_idx);  // more frames (DATA the window and the queue now allow)
  } else if (c.kind == ConnKind::kUpstream && c.up_h2 != 0) {
    h2up_.Wake(conn_idx);
  } else if (c.exchange != kNil && exchanges_.Get(c.exchange).up_h2) {
    if (c.kind == ConnKind::kClient) h2up_.PumpH1Response(c.exchange);
  } else if (c.exchange != kNil && exchanges_.Get(c.exchange).tunnel.active) {
    // Room again on this socket: move more from its peer, or forward a pending FIN.
    tunnels_.Pump(c.exchange, c.kind == ConnKind::kUpstream);
  } else if (c.exchange != kNil) {
    Exchange& ex = exchanges_.Get(c.exchange);
    if (c.kind == ConnKind::kUpstream) {
      PumpRequestBody(c.exchange);
    } else if (ex.resp == RespState::kBody && ex.upstream != kNil) {
      PumpResponseBody(c.exchange);
    } else if (ex.resp == RespState::kWaitHead && ex.upstream != kNil && InBytes(ex.upstream) > 0) {
      ProcessUpstreamInput(ex.upstream);  // heads (1xx) waited for room in this queue
    }
  }
  Conn& c2 = conns_.Get(conn_idx);
  if (c2.flags & kClosing) return;
  if (OutCount(conn_idx) > 0) {
    Flush(conn_idx);
  } else if ((c2.flags & kCloseAfterSend) && c2.exchange == kNil) {
    // Only once the exchange is over: an empty queue mid-response just means the
    // upstream side is momentarily behind.
    if (c2.flags & kLingerNeeded) {
      LingeringClose(conn_idx);
    } else {
      CloseConn(conn_idx);
    }
  } else {
    ReleaseIoIfIdle(conn_idx);
  }
}

}  // namespace zproxy::dataplane
