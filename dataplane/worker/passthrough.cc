// Tunnels in sockmap or splice mode: what both modes share. A tcp_proxy client's bytes are
// never read by the worker in these modes: from accept to pairing they wait in the kernel's
// receive queue (TCP flow control bounds them), so there are no userspace leftovers whose
// order could race with the kernel's redirect. WebSocket and CONNECT tunnels get here after
// their hand-over (upgraded_tunnel.cc) has sent everything userspace read, with no receive
// in flight: the same guarantee. The copy mode (tunnel.cc) is the fallback for connections
// that cannot use either.
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/splice_pairs.h"
#include "dataplane/io/tcp_counters.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

PassMode Worker::TunnelMode(uint16_t listener) {
  PassthroughCaps caps = options_.passthrough;
  caps.splice = caps.splice && ring_.features().splice;
  return ResolvePassMode(snap_->listeners[listener].pass_mode, caps, &mode_why_);
}

void Worker::StartPassthrough(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  conns_.Get(ex.client).flags |= kPassthrough;
  conns_.Get(ex.upstream).flags |= kPassthrough;
  PassMode mode = static_cast<PassMode>(ex.pass_mode);
  if (mode == PassMode::kSockmap && !StartSockmap(ex_idx)) {
    if (ex.pairing_moved_bytes) {
      AbortPassthrough(ex_idx, true);
      return;
    }
    CountTunnelFallback(TunnelFallback::kSockmapPairing);
    mode = PassMode::kSplice;
  }
  if (mode == PassMode::kSplice && !StartSplice(ex_idx)) {
    CountTunnelFallback(TunnelFallback::kSplicePipe);
    mode = PassMode::kCopy;
  }
  Exchange& ex2 = exchanges_.Get(ex_idx);
  ex2.pass_mode = static_cast<uint8_t>(mode);
  stats_.passthrough_mode[static_cast<int>(mode)].Add();
  if (mode == PassMode::kCopy) {
    // Nothing was read yet: the copy mode starts from the kernel's queues like the others.
    ArmRecv(ex2.client);
    ArmRecv(ex2.upstream);
    PumpTunnel(ex_idx, true);
  }
}

uint32_t Worker::PassthroughOpDone(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  c.inflight--;
  if (c.flags & kClosing) {
    MaybeFreeConn(conn_idx);
    return kNil;
  }
  return c.exchange;
}

void Worker::ReleasePassthrough(Exchange& ex) {
  if (ex.paired) {
    // The bytes the kernel moved: what each socket received since the pairing (a FIN
    // counts 1 in tcpi_bytes_received).
    io::TcpCounters c, u;
    if (ex.client != kNil && ReadTcpCounters(conns_.Get(ex.client).fd, &c)) {
      stats_.tcp_proxy_bytes.Add(c.received - ex.client_rx_base - (ex.client_eof ? 1 : 0));
    }
    if (ex.upstream != kNil && ReadTcpCounters(conns_.Get(ex.upstream).fd, &u)) {
      stats_.tcp_proxy_bytes.Add(u.received - ex.upstream_rx_base - (ex.upstream_eof ? 1 : 0));
    }
    RemovePair(options_.passthrough.pairs_fd, options_.passthrough.peer_fd, ex.client_key,
               ex.upstream_key);
    ex.paired = false;
  }
  for (Exchange::SpliceDir& d : ex.dirs) {
    // A splice still in flight holds its own reference to the pipe.
    if (d.rd >= 0) close(d.rd);
    if (d.wr >= 0) close(d.wr);
    d.rd = d.wr = -1;
  }
}

void Worker::FinishPassthrough(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  ReleasePassthrough(ex);
  uint32_t client = ex.client;
  ReleaseUpstream(ex_idx, false);
  conns_.Get(client).exchange = kNil;
  FreeExchange(ex_idx);
  stats_.client_idle.Add();
  CloseConn(client);
}

void Worker::AbortPassthrough(uint32_t ex_idx, bool reset) {
  Exchange& ex = exchanges_.Get(ex_idx);
  if (reset) {
    // Closing with SO_LINGER {1, 0} sends an RST: the side still alive learns that its
    // peer reset, instead of a clean FIN that would pass for a complete stream.
    linger lg{1, 0};
    for (uint32_t idx : {ex.client, ex.upstream}) {
      if (idx != kNil) setsockopt(conns_.Get(idx).fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
  }
  ReleasePassthrough(ex);
  AbortExchange(ex_idx, true);
}

void Worker::OnPassthroughTimeout(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  uint32_t ex_idx = c.exchange;
  Exchange& ex = exchanges_.Get(ex_idx);
  if (ex.paired) {
    // The worker never sees a sockmap tunnel's bytes: it is idle only if neither socket
    // received anything since the last check.
    io::TcpCounters a, b;
    if (ReadTcpCounters(c.fd, &a) && ReadTcpCounters(conns_.Get(ex.upstream).fd, &b)) {
      uint64_t activity = a.received + b.received;
      if (activity != ex.activity) {
        ex.activity = activity;
        timers_.Arm(TunnelIdleList(ex), conn_idx, NowMs());
        return;
      }
    }
  }
  AbortPassthrough(ex_idx, false);
}

void Worker::CheckPassthroughWatch() {
  size_t keep = 0;
  for (size_t i = 0; i < pass_watch_.size(); i++) {
    auto [idx, gen] = pass_watch_[i];
    Conn& c = conns_.Get(idx);
    if (c.gen != gen || (c.flags & kClosing) || c.exchange == kNil) continue;
    uint32_t ex_idx = c.exchange;
    Exchange& ex = exchanges_.Get(ex_idx);
    // A side that sent its FIN is no longer polled (POLLRDHUP would fire forever): a reset
    // that follows shows up as a socket error here.
    io::TcpCounters t;
    bool reset = false;
    if (ex.client_eof && ReadTcpCounters(c.fd, &t) && t.error != 0) reset = true;
    if (ex.upstream_eof && ex.upstream != kNil && ReadTcpCounters(conns_.Get(ex.upstream).fd, &t) &&
        t.error != 0) {
      reset = true;
    }
    if (reset) {
      ex.watched = false;
      AbortPassthrough(ex_idx, true);
      continue;
    }
    if (ForwardSockmapFins(ex_idx)) continue;  // finished (and freed)
    pass_watch_[keep++] = pass_watch_[i];
  }
  pass_watch_.resize(keep);
}

}  // namespace zproxy::dataplane
