// WebSocket (after a 101) and CONNECT (after its 200) tunnels of HTTP listeners, in the
// listener's tunnel_mode: copy (copy.cc), or sockmap / splice through the same machinery
// as tcp_proxy (passthrough.cc).
//
// Unlike a tcp_proxy connection, an HTTP connection has been read by the worker before it
// becomes a tunnel: the 101 (or 200) and bytes either side sent right behind the heads sit
// in userspace queues, and a multishot recv is armed on both sockets. The hand-over keeps
// the byte order:
//   1. stop reading: both recvs are cancelled (bytes they still deliver are kept);
//   2. what userspace holds goes out with the copy machinery, in order, FINs included;
//   3. once no input is queued, no output is waiting, and no recv or send is in flight,
//      the client's direct descriptor becomes a regular fd (IORING_OP_FIXED_FD_INSTALL;
//      a direct descriptor cannot go into a BPF map or be spliced) and the direct one is
//      closed;
//   4. StartPassthrough pairs the sockets as for tcp_proxy: bytes that arrived in the
//      kernel meanwhile go first (the SO_RCVLOWAT gate for sockmap; splice reads them).
// TLS on either side keeps the tunnel in copy mode (counted by reason).
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "common/log.h"
#include "dataplane/io/tcp_counters.h"
#include "dataplane/tunnel/tunnels.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

void Tunnels::CountFallback(TunnelFallback reason) {
  w_.stats_.passthrough_fallbacks.Add();
  w_.stats_.tunnel_fallbacks[static_cast<int>(reason)].Add();
}

PassMode Tunnels::UpgradedMode(uint32_t ex_idx) {
  const Exchange& ex = w_.exchanges_.Get(ex_idx);
  const Conn& c = w_.conns_.Get(ex.client);
  PassthroughCaps caps = w_.options_.passthrough;
  caps.splice = caps.splice && w_.ring_.features().splice;
  // Why it fell back: the listener's log line said it already.
  PassMode mode = ResolvePassMode(w_.snap_->listeners[c.owner].tunnel_mode, caps, &mode_why_);
  if (mode == PassMode::kCopy) return mode;
  TunnelFallback reason;
  if (c.tls != kNil) {
    reason = TunnelFallback::kClientTls;
  } else if (w_.Cs(ex.cluster).cfg->tls != nullptr) {
    reason = TunnelFallback::kUpstreamTls;
  } else if ((c.flags & kFixedFile) && !(caps.fd_install && w_.ring_.features().fixed_fd_install)) {
    reason = TunnelFallback::kNoFdInstall;
  } else {
    return mode;
  }
  CountFallback(reason);
  return PassMode::kCopy;
}

void Tunnels::StartUpgraded(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ex.req_done = true;
  w_.timers_.Disarm(ex.upstream);  // no read timeout: the idle timeout covers both sides
  w_.timers_.Arm(IdleList(ex), ex.client, w_.NowMs());
  PassMode mode = UpgradedMode(ex_idx);
  ex.tunnel.pass_mode = static_cast<uint8_t>(mode);
  if (mode == PassMode::kCopy) {
    w_.stats_.passthrough_mode[static_cast<int>(PassMode::kCopy)].Add();
  } else {
    ex.tunnel.handover = true;
    w_.PauseRecv(ex.client);
    w_.PauseRecv(ex.upstream);
  }
  // The 101 (or 200) first, then whatever either side sent behind the heads; the last
  // pump checks whether the hand-over can finish.
  Pump(ex_idx, false);
  if (w_.exchanges_.Get(ex_idx).upstream != kNil) Pump(ex_idx, true);
}

bool Tunnels::SockmapRefusal(const Exchange& ex, TunnelFallback* why) {
  *why = TunnelFallback::kHalfClosed;
  if (ex.tunnel.client_eof || ex.tunnel.upstream_eof)
    return true;  // seen (and forwarded) by the copy
  io::TcpCounters c, u;
  if (!io::ReadTcpCounters(w_.conns_.Get(ex.client).fd, &c) ||
      !io::ReadTcpCounters(w_.conns_.Get(ex.upstream).fd, &u)) {
    return true;  // gone: the pairing would fail anyway
  }
  // A FIN that arrived after the receives stopped is only in the kernel's state.
  if (c.fin || u.fin) return true;
  // Bytes queued behind a receive that filled its buffer: the first queued skb may have
  // been read in part, and the verdict is handed whole skbs (tcp_read_skb ignores the read
  // offset), so its start would be sent twice (seen: 1 MB tunnels corrupt at a 16 KiB
  // boundary). A shorter receive drained the queue, so whatever queued since is whole
  // skbs. Splice reads from the offset.
  auto maybe_split = [this](uint32_t idx, const io::TcpCounters& t) {
    const Conn& k = w_.conns_.Get(idx);
    return t.inq != 0 && k.io != kNil && w_.ios_.Get(k.io).last_recv_full;
  };
  *why = TunnelFallback::kQueuedBytes;
  return maybe_split(ex.client, c) || maybe_split(ex.upstream, u);
}

void Tunnels::MaybeFinishHandover(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (!ex.tunnel.handover || ex.tunnel.installing || ex.upstream == kNil) return;
  Conn& c = w_.conns_.Get(ex.client);
  Conn& u = w_.conns_.Get(ex.upstream);
  if ((c.flags | u.flags) & (kRecvArmed | kSendInflight | kClosing)) return;
  auto queued = [this](const Conn& k) {
    return k.io != kNil && (w_.ios_.Get(k.io).in_count != 0 || w_.ios_.Get(k.io).out_count != 0);
  };
  if (queued(c) || queued(u)) return;
  if (c.flags & kFixedFile) {
    // Every op naming the direct descriptor must be done first (a FIN forwarded to the
    // client: its shutdown resolves the slot when it runs, on io-wq).
    if (c.inflight != 0) return;
    io_uring_sqe* sqe = w_.ring_.Sqe();
    io_uring_prep_rw(io::kOpFixedFdInstall, sqe, c.fd, nullptr, 0, 0);
    sqe->flags = IOSQE_FIXED_FILE;  // install_fd_flags 0: the new fd is O_CLOEXEC
    io_uring_sqe_set_data64(sqe, w_.Ud(io::Op::kFdInstall, ex.client));
    c.inflight++;
    ex.tunnel.installing = true;
    return;
  }
  ex.tunnel.handover = false;
  c.flags &= ~kRecvPaused;
  u.flags &= ~kRecvPaused;
  c.flags |= kPassthrough;
  TunnelFallback why;
  if (ex.tunnel.pass_mode == static_cast<uint8_t>(PassMode::kSockmap) && SockmapRefusal(ex, &why)) {
    // Spliced instead (copied without io_uring splice).
    CountFallback(why);
    bool splice = w_.options_.passthrough.splice && w_.ring_.features().splice;
    ex.tunnel.pass_mode = static_cast<uint8_t>(splice ? PassMode::kSplice : PassMode::kCopy);
  }
  StartPassthrough(ex_idx);
}

void Tunnels::OnFdInstall(uint32_t conn_idx, int res) {
  Conn& c = w_.conns_.Get(conn_idx);
  c.inflight--;
  if ((c.flags & kClosing) || c.exchange == kNil) {
    if (res >= 0) close(res);  // the tunnel ended meanwhile
    w_.MaybeFreeConn(conn_idx);
    return;
  }
  uint32_t ex_idx = c.exchange;
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ex.tunnel.installing = false;
  if (res < 0) {
    if (!fd_install_warned_) {
      fd_install_warned_ = true;
      ZLOG_WARN("worker %u: IORING_OP_FIXED_FD_INSTALL failed (%s): tunnel copied instead",
                w_.options_.index, strerror(-res));
    }
    CountFallback(TunnelFallback::kFdInstallFailed);
    ex.tunnel.handover = false;
    ex.tunnel.pass_mode = static_cast<uint8_t>(PassMode::kCopy);
    w_.stats_.passthrough_mode[static_cast<int>(PassMode::kCopy)].Add();
    for (uint32_t idx : {ex.client, ex.upstream}) {
      w_.conns_.Get(idx).flags &= ~kRecvPaused;
      w_.ArmRecv(idx);
    }
    return;
  }
  // splice relies on a nonblocking source (EAGAIN instead of sleeping in io-wq). The flag
  // is the socket file's, shared with the direct descriptor, which nothing uses any more.
  fcntl(res, F_SETFL, fcntl(res, F_GETFL) | O_NONBLOCK);
  io_uring_sqe* sqe = w_.ring_.Sqe();
  io_uring_prep_close_direct(sqe, static_cast<unsigned>(c.fd));
  io_uring_sqe_set_data64(sqe, w_.Ud(io::Op::kClose, conn_idx));
  c.inflight++;
  c.fd = res;
  c.flags &= ~kFixedFile;
  MaybeFinishHandover(ex_idx);
}

void Tunnels::RecvStopped(uint32_t conn_idx) {
  Conn& c = w_.conns_.Get(conn_idx);
  if (c.exchange == kNil || (c.flags & kClosing)) return;
  // Through MaybeShutdown: a FIN seen before is forwarded before the hand-over.
  if (w_.exchanges_.Get(c.exchange).tunnel.handover) MaybeShutdown(c.exchange);
}

}  // namespace zproxy::dataplane
