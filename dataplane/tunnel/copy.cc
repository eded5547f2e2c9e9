// L4 pass-through for tcp_proxy listeners in userspace copy mode (sockmap and splice
// modes: passthrough.cc): once the upstream
// connection is up, bytes move both ways through the same receive buffers and output
// queues as HTTP bodies (no copy in userspace beyond the kernel's), with backpressure.
// Half-close is forwarded: a FIN from one side becomes shutdown(SHUT_WR) on the other
// once everything before it has been sent; when both directions are done, both sockets
// close. An error or RST on either side closes both. The same copy carries WebSocket and
// CONNECT tunnels in copy mode, and the hand-over of the others (upgraded.cc).
#include <sys/socket.h>

#include "dataplane/tunnel/tunnels.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

void Tunnels::StartTcpProxy(uint32_t conn_idx) {
  Conn& c = w_.conns_.Get(conn_idx);
  const ListenerRuntime& listener = w_.snap_->listeners[c.owner];
  uint32_t ex_idx = w_.exchanges_.Alloc();
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ex.tunnel.active = true;
  ex.client = conn_idx;
  ex.cluster = w_.clusters_.ForCluster(static_cast<size_t>(listener.tcp_cluster));
  w_.RefCluster(ex.cluster);
  ex.req_done = true;  // no HTTP request framing to track
  ex.tunnel.pass_mode = static_cast<uint8_t>(TcpProxyMode(c.owner));
  c.exchange = ex_idx;
  w_.stats_.client_idle.Sub();
  w_.stats_.tcp_proxy_connections.Add();
  if (listener.sni != nullptr) {
    StartHello(ex_idx);  // the default cluster holds the place until the ClientHello says
    return;
  }
  ConnectTcpProxy(ex_idx);
}

void Tunnels::ConnectTcpProxy(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  uint32_t conn_idx = ex.client;
  Conn& c = w_.conns_.Get(conn_idx);
  if (ex.tunnel.pass_mode == static_cast<uint8_t>(PassMode::kCopy)) {
    w_.stats_.passthrough_mode[static_cast<int>(PassMode::kCopy)].Add();
    w_.ArmRecv(conn_idx);
  } else {
    // sockmap/splice: the client's bytes wait in the kernel until the upstream is up
    // (passthrough.cc says why).
    c.flags |= kPassthrough;
  }
  w_.timers_.Arm(w_.t_client_idle_[c.owner], conn_idx, w_.NowMs());
  if (!w_.AssignUpstream(ex_idx)) {
    w_.stats_.CountError(w_.NoUpstreamCause(ex_idx));
    w_.AbortExchange(ex_idx, true);
  }
}

uint16_t Tunnels::IdleList(const Exchange& ex) {
  uint16_t listener = w_.conns_.Get(ex.client).owner;
  return ex.connect ? w_.t_connect_idle_[listener] : w_.t_client_idle_[listener];
}

void Tunnels::Pump(uint32_t ex_idx, bool from_client) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  uint32_t from = from_client ? ex.client : ex.upstream;
  uint32_t to = from_client ? ex.upstream : ex.client;
  if (from == kNil || to == kNil || (w_.conns_.Get(ex.upstream).flags & kConnecting)) return;
  ConnIo& io = w_.Io(from);
  bool moved = false;
  while (io.in_count > 0 && w_.OutHasRoom(to)) {
    size_t n = w_.InFront(io).len;
    w_.stats_.tcp_proxy_bytes.Add(n);
    w_.ForwardFront(from, to, n);
    moved = true;
  }
  w_.Flush(to);
  // Handing over to sockmap/splice (upgraded.cc): the receives stay stopped.
  if (!ex.tunnel.handover) w_.MaybeResumeRecv(from);
  if (moved) w_.timers_.Arm(IdleList(ex), ex.client, w_.NowMs());
  MaybeShutdown(ex_idx);
}

void Tunnels::MaybeShutdown(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.upstream == kNil) return;
  auto drained = [this](uint32_t src, uint32_t dst) {
    return w_.InBytes(src) == 0 && w_.OutCount(dst) == 0 &&
           !(w_.conns_.Get(dst).flags & kSendInflight);
  };
  auto shut_wr = [this](uint32_t idx) { w_.ShutdownWrite(idx); };
  if (ex.tunnel.client_eof && !ex.tunnel.upstream_wr_shut && drained(ex.client, ex.upstream)) {
    shut_wr(ex.upstream);
    ex.tunnel.upstream_wr_shut = true;
  }
  if (ex.tunnel.upstream_eof && !ex.tunnel.client_wr_shut && drained(ex.upstream, ex.client)) {
    shut_wr(ex.client);
    ex.tunnel.client_wr_shut = true;
  }
  if (ex.tunnel.upstream_wr_shut && ex.tunnel.client_wr_shut) {
    // Both directions ended cleanly: close both sockets. A tunnel that ended during its
    // hand-over (upgraded.cc) was carried by the copy from start to end.
    if (ex.tunnel.handover) w_.stats_.passthrough_mode[static_cast<int>(PassMode::kCopy)].Add();
    uint32_t client = ex.client;
    w_.ReleaseUpstream(ex_idx, false);
    w_.conns_.Get(client).exchange = kNil;
    w_.FreeExchange(ex_idx);
    w_.stats_.client_idle.Add();
    w_.CloseConn(client);
    return;
  }
  if (ex.tunnel.handover) MaybeFinishHandover(ex_idx);
}

void Tunnels::OnClientEof(uint32_t ex_idx, int res) {
  if (res == 0) {
    w_.exchanges_.Get(ex_idx).tunnel.client_eof = true;  // forwarded as FIN once drained
    MaybeShutdown(ex_idx);
  } else {
    w_.stats_.CountError(ErrorCause::kClientReset);
    w_.AbortExchange(ex_idx, true);
  }
}

void Tunnels::OnUpstreamEof(uint32_t ex_idx, int res) {
  if (res == 0) {
    w_.exchanges_.Get(ex_idx).tunnel.upstream_eof =
        true;  // forwarded as FIN to the client once drained
    MaybeShutdown(ex_idx);
  } else {
    w_.UpstreamFailed(ex_idx, ErrorCause::kUpstreamClosed, false);
  }
}

}  // namespace zproxy::dataplane
