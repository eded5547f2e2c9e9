// Tunnels in sockmap or splice mode: what both modes share. A tcp_proxy client's bytes are
// never read by the worker in these modes: from accept to pairing they wait in the kernel's
// receive queue (TCP flow control bounds them), so there are no userspace leftovers whose
// order could race with the kernel's redirect. WebSocket and CONNECT tunnels get here after
// their hand-over (upgraded.cc) has sent everything userspace read, with no receive
// in flight: the same guarantee. The copy mode (copy.cc) is the fallback for connections
// that cannot use either.
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/splice_pairs.h"
#include "dataplane/io/tcp_counters.h"
#include "dataplane/sidecar/local_hop.h"
#include "dataplane/tunnel/tunnels.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

PassMode Tunnels::TcpProxyMode(uint16_t listener) {
  PassthroughCaps caps = w_.options_.passthrough;
  caps.splice = caps.splice && w_.ring_.features().splice;
  return ResolvePassMode(w_.snap_->listeners[listener].pass_mode, caps, &mode_why_);
}

void Tunnels::StartPassthrough(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  w_.conns_.Get(ex.client).flags |= kPassthrough;
  w_.conns_.Get(ex.upstream).flags |= kPassthrough;
  PassMode mode = static_cast<PassMode>(ex.tunnel.pass_mode);
  int lh = w_.options_.passthrough.local_hops_fd;
  if (mode != PassMode::kCopy && lh >= 0 &&
      (IsLocalHop(lh, w_.conns_.Get(ex.client).fd) ||
       IsLocalHop(lh, w_.conns_.Get(ex.upstream).fd))) {
    CountFallback(TunnelFallback::kLocalHop);
    mode = PassMode::kCopy;
  }
  if (mode == PassMode::kSockmap && !StartSockmap(ex_idx)) {
    if (ex.tunnel.pairing_moved_bytes) {
      AbortPassthrough(ex_idx, true);
      return;
    }
    CountFallback(TunnelFallback::kSockmapPairing);
    mode = PassMode::kSplice;
  }
  if (mode == PassMode::kSplice && !StartSplice(ex_idx)) {
    CountFallback(TunnelFallback::kSplicePipe);
    mode = PassMode::kCopy;
  }
  Exchange& ex2 = w_.exchanges_.Get(ex_idx);
  ex2.tunnel.pass_mode = static_cast<uint8_t>(mode);
  w_.stats_.passthrough_mode[static_cast<int>(mode)].Add();
  if (mode == PassMode::kCopy) {
    // Nothing was read yet: the copy mode starts from the kernel's queues like the others.
    w_.ArmRecv(ex2.client);
    w_.ArmRecv(ex2.upstream);
    Pump(ex_idx, true);
  }
}

void Tunnels::OnTlsUpstream(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (!ex.tunnel.active || ex.tunnel.pass_mode == static_cast<uint8_t>(PassMode::kCopy)) return;
  ex.tunnel.pass_mode = static_cast<uint8_t>(PassMode::kCopy);
  CountFallback(TunnelFallback::kUpstreamTls);
  w_.stats_.passthrough_mode[static_cast<int>(PassMode::kCopy)].Add();
  w_.ArmRecv(ex.client);
}

uint32_t Tunnels::PassthroughOpDone(uint32_t conn_idx) {
  Conn& c = w_.conns_.Get(conn_idx);
  c.inflight--;
  if (c.flags & kClosing) {
    w_.MaybeFreeConn(conn_idx);
    return kNil;
  }
  return c.exchange;
}

void Tunnels::ReleasePassthrough(Exchange& ex) {
  if (ex.tunnel.paired) {
    // The bytes the kernel moved: what each socket received since the pairing (a FIN
    // counts 1 in tcpi_bytes_received).
    io::TcpCounters c, u;
    if (ex.client != kNil && ReadTcpCounters(w_.conns_.Get(ex.client).fd, &c)) {
      w_.stats_.tcp_proxy_bytes.Add(c.received - ex.tunnel.client_rx_base -
                                    (ex.tunnel.client_eof ? 1 : 0));
    }
    if (ex.upstream != kNil && ReadTcpCounters(w_.conns_.Get(ex.upstream).fd, &u)) {
      w_.stats_.tcp_proxy_bytes.Add(u.received - ex.tunnel.upstream_rx_base -
                                    (ex.tunnel.upstream_eof ? 1 : 0));
    }
    RemovePair(w_.options_.passthrough.pairs_fd, w_.options_.passthrough.peer_fd,
               ex.tunnel.client_key, ex.tunnel.upstream_key);
    ex.tunnel.paired = false;
  }
  for (TunnelState::SpliceDir& d : ex.tunnel.dirs) {
    // A splice still in flight holds its own reference to the pipe.
    if (d.rd >= 0) close(d.rd);
    if (d.wr >= 0) close(d.wr);
    d.rd = d.wr = -1;
  }
}

void Tunnels::FinishPassthrough(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ReleasePassthrough(ex);
  uint32_t client = ex.client;
  w_.ReleaseUpstream(ex_idx, false);
  w_.conns_.Get(client).exchange = kNil;
  w_.FreeExchange(ex_idx);
  w_.stats_.client_idle.Add();
  w_.CloseConn(client);
}

void Tunnels::AbortPassthrough(uint32_t ex_idx, bool reset) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (reset) {
    // Closing with SO_LINGER {1, 0} sends an RST: the side still alive learns that its
    // peer reset, instead of a clean FIN that would pass for a complete stream.
    linger lg{1, 0};
    for (uint32_t idx : {ex.client, ex.upstream}) {
      if (idx != kNil) setsockopt(w_.conns_.Get(idx).fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
  }
  ReleasePassthrough(ex);
  w_.AbortExchange(ex_idx, true);
}

void Tunnels::OnPassthroughTimeout(uint32_t conn_idx) {
  Conn& c = w_.conns_.Get(conn_idx);
  uint32_t ex_idx = c.exchange;
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.tunnel.paired) {
    // The worker never sees a sockmap tunnel's bytes: it is idle only if neither socket
    // received anything since the last check.
    io::TcpCounters a, b;
    if (ReadTcpCounters(c.fd, &a) && ReadTcpCounters(w_.conns_.Get(ex.upstream).fd, &b)) {
      uint64_t activity = a.received + b.received;
      if (activity != ex.tunnel.activity) {
        ex.tunnel.activity = activity;
        w_.timers_.Arm(IdleList(ex), conn_idx, w_.NowMs());
        return;
      }
    }
  }
  AbortPassthrough(ex_idx, false);
}

void Tunnels::CheckWatch() {
  size_t keep = 0;
  for (size_t i = 0; i < pass_watch_.size(); i++) {
    auto [idx, gen] = pass_watch_[i];
    Conn& c = w_.conns_.Get(idx);
    if (c.gen != gen || (c.flags & kClosing) || c.exchange == kNil) continue;
    uint32_t ex_idx = c.exchange;
    Exchange& ex = w_.exchanges_.Get(ex_idx);
    // A side that sent its FIN is no longer polled (POLLRDHUP would fire forever): a reset
    // that follows shows up as a socket error here.
    io::TcpCounters t;
    bool reset = false;
    if (ex.tunnel.client_eof && ReadTcpCounters(c.fd, &t) && t.error != 0) reset = true;
    if (ex.tunnel.upstream_eof && ex.upstream != kNil &&
        ReadTcpCounters(w_.conns_.Get(ex.upstream).fd, &t) && t.error != 0) {
      reset = true;
    }
    if (reset) {
      ex.tunnel.watched = false;
      AbortPassthrough(ex_idx, true);
      continue;
    }
    if (ForwardSockmapFins(ex_idx)) continue;  // finished (and freed)
    pass_watch_[keep++] = pass_watch_[i];
  }
  pass_watch_.resize(keep);
}

void Tunnels::ForgetSplicedPairs() {
  // Tunnels still open when the drain deadline passed: the kernel drops their sockets from
  // the SOCKHASH when the process exits, but not their zproxy_pair_peer entries.
  for (uint32_t i = 0; i < w_.conns_.capacity(); i++) {
    Conn& c = w_.conns_.Get(i);
    if (c.fd < 0 || c.kind != ConnKind::kClient || c.exchange == kNil) continue;
    Exchange& ex = w_.exchanges_.Get(c.exchange);
    if (ex.tunnel.paired) ReleasePassthrough(ex);
  }
}

}  // namespace zproxy::dataplane
