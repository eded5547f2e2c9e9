// L4 pass-through for tcp_proxy listeners in userspace copy mode (sockmap and splice
// modes: passthrough.cc): once the upstream
// connection is up, bytes move both ways through the same receive buffers and output
// queues as HTTP bodies (no copy in userspace beyond the kernel's), with backpressure.
// Half-close is forwarded: a FIN from one side becomes shutdown(SHUT_WR) on the other
// once everything before it has been sent; when both directions are done, both sockets
// close. An error or RST on either side closes both. The same copy carries WebSocket and
// CONNECT tunnels in copy mode, and the hand-over of the others (upgraded_tunnel.cc).
#include <sys/socket.h>

#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

void Worker::StartTunnel(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  const ListenerRuntime& listener = snap_->listeners[c.owner];
  uint32_t ex_idx = exchanges_.Alloc();
  Exchange& ex = exchanges_.Get(ex_idx);
  ex.tunnel = true;
  ex.client = conn_idx;
  ex.cluster = clusters_.ForCluster(static_cast<size_t>(listener.tcp_cluster));
  RefCluster(ex.cluster);
  ex.req_done = true;  // no HTTP request framing to track
  ex.pass_mode = static_cast<uint8_t>(TunnelMode(c.owner));
  c.exchange = ex_idx;
  if (ex.pass_mode == static_cast<uint8_t>(PassMode::kCopy)) {
    stats_.passthrough_mode[static_cast<int>(PassMode::kCopy)].Add();
    ArmRecv(conn_idx);
  } else {
    // sockmap/splice: the client's bytes wait in the kernel until the upstream is up
    // (passthrough.cc says why).
    c.flags |= kPassthrough;
  }
  stats_.client_idle.Sub();
  stats_.tcp_proxy_connections.Add();
  timers_.Arm(t_client_idle_[c.owner], conn_idx, NowMs());
  if (!AssignUpstream(ex_idx)) {
    stats_.CountError(ErrorCause::kNoHealthyUpstream);
    AbortExchange(ex_idx, true);
  }
}

uint16_t Worker::TunnelIdleList(const Exchange& ex) {
  uint16_t listener = conns_.Get(ex.client).owner;
  return ex.connect ? t_connect_idle_[listener] : t_client_idle_[listener];
}

void Worker::PumpTunnel(uint32_t ex_idx, bool from_client) {
  Exchange& ex = exchanges_.Get(ex_idx);
  uint32_t from = from_client ? ex.client : ex.upstream;
  uint32_t to = from_client ? ex.upstream : ex.client;
  if (from == kNil || to == kNil || (conns_.Get(ex.upstream).flags & kConnecting)) return;
  ConnIo& io = Io(from);
  bool moved = false;
  while (io.in_count > 0 && OutHasRoom(to)) {
    size_t n = InFront(io).len;
    stats_.tcp_proxy_bytes.Add(n);
    ForwardFront(from, to, n);
    moved = true;
  }
  Flush(to);
  // Handing over to sockmap/splice (upgraded_tunnel.cc): the receives stay stopped.
  if (!ex.handover) MaybeResumeRecv(from);
  if (moved) timers_.Arm(TunnelIdleList(ex), ex.client, NowMs());
  MaybeShutdownTunnel(ex_idx);
}

void Worker::MaybeShutdownTunnel(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  if (ex.upstream == kNil) return;
  auto drained = [this](uint32_t src, uint32_t dst) {
    return InBytes(src) == 0 && OutCount(dst) == 0 && !(conns_.Get(dst).flags & kSendInflight);
  };
  auto shut_wr = [this](uint32_t idx) { ShutdownWrite(idx); };
  if (ex.client_eof && !ex.upstream_wr_shut && drained(ex.client, ex.upstream)) {
    shut_wr(ex.upstream);
    ex.upstream_wr_shut = true;
  }
  if (ex.upstream_eof && !ex.client_wr_shut && drained(ex.upstream, ex.client)) {
    shut_wr(ex.client);
    ex.client_wr_shut = true;
  }
  if (ex.upstream_wr_shut && ex.client_wr_shut) {
    // Both directions ended cleanly: close both sockets. A tunnel that ended during its
    // hand-over (upgraded_tunnel.cc) was carried by the copy from start to end.
    if (ex.handover) stats_.passthrough_mode[static_cast<int>(PassMode::kCopy)].Add();
    uint32_t client = ex.client;
    ReleaseUpstream(ex_idx, false);
    conns_.Get(client).exchange = kNil;
    FreeExchange(ex_idx);
    stats_.client_idle.Add();
    CloseConn(client);
    return;
  }
  if (ex.handover) MaybeFinishHandover(ex_idx);
}

}  // namespace zproxy::dataplane
