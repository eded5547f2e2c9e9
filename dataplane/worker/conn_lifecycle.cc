// Opening and closing connections, and tearing down exchanges. A slot is only reused
// once every operation that references it has completed (Conn::inflight), so a late
// completion can never touch a new connection's state.
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {
namespace {

// liburing 2.3 predates io_uring socket commands (kernel 6.7); the ABI constant is stable.
constexpr uint32_t kSocketUringOpSetsockopt = 3;
// Read by the kernel when the SQE is issued; constant, so safe to share.
constexpr linger kResetLinger{1, 0};

}  // namespace

uint64_t Worker::Ud(io::Op op, uint32_t conn_idx) const {
  return io::UserData{op, conn_idx, conns_.Get(conn_idx).gen, 0}.Pack();
}

uint32_t Worker::NewConn(ConnKind kind, int fd, uint16_t owner) {
  uint32_t idx = conns_.Alloc();
  Conn& c = conns_.Get(idx);
  c.kind = kind;
  c.fd = fd;
  c.owner = owner;
  if (kind == ConnKind::kClient) {
    stats_.client_open.Add();
  } else {
    stats_.upstream_open.Add();
    RefCluster(owner);  // released in MaybeFreeConn
  }
  return idx;
}

void Worker::CloseConn(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & kClosing) return;
  c.flags |= kClosing;
  timers_.Disarm(conn_idx);
  if (c.kind == ConnKind::kClient) h2_.Teardown(conn_idx);  // HTTP/2: its streams end
  if (c.kind == ConnKind::kUpstream) {
    Cs(c.owner).pool.Remove(conn_idx, c.endpoint);  // never handed out again
    h2up_.Teardown(conn_idx);                       // HTTP/2: streams still on it fail
    if (c.flags & kPooled) {
      c.flags &= ~kPooled;
      stats_.upstream_idle.Sub();
    }
  }
  if (c.kind == ConnKind::kClient) {
    stats_.client_open.Sub();
    ReleaseConnection(c.owner);  // Listener.max_connections (limits.cc)
    if (c.exchange == kNil) stats_.client_idle.Sub();
  } else {
    stats_.upstream_open.Sub();
  }
  // Cancel exactly what is pending on the socket (the multishot recv, a send waiting for
  // buffer space, a connect), by user_data: an fd-wide cancel makes the kernel scan
  // every poll bucket of the ring, which showed up in close-heavy profiles. An in-flight
  // op holds a file reference, so without the cancel the close would not take effect.
  auto cancel = [&](io::Op op) {
    io_uring_sqe* s = ring_.Sqe();
    io_uring_prep_cancel64(s, Ud(op, conn_idx), 0);
    io_uring_sqe_set_data64(s, io::UserData{io::Op::kCancel, 0, 0, 0}.Pack());
  };
  if (c.flags & kPassthrough) {
    // Watches, splices and their polls: one cancel by fd (a real fd, never a direct one).
    io_uring_sqe* s = ring_.Sqe();
    io_uring_prep_cancel_fd(s, c.fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(s, io::UserData{io::Op::kCancel, 0, 0, 0}.Pack());
  }
  if (c.flags & kRecvArmed) cancel(io::Op::kRecv);
  if (c.flags & kConnecting) cancel(io::Op::kConnect);
  if (c.flags & kSendInflight) {
    uint16_t zc_bid = ios_.Get(c.io).zc_bid;
    io_uring_sqe* s = ring_.Sqe();
    io::UserData ud{zc_bid != 0 ? io::Op::kSendZc : io::Op::kSend, conn_idx, c.gen, zc_bid};
    io_uring_prep_cancel64(s, ud.Pack(), 0);
    io_uring_sqe_set_data64(s, io::UserData{io::Op::kCancel, 0, 0, 0}.Pack());
  }
  if (c.flags & kShutdownPending) {
    c.flags |= kCloseDeferred;  // OnShutdown submits the close
    return;
  }
  SubmitClose(conn_idx);
}

void Worker::ResetOnClose(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & kClosing) return;
  if (!(c.flags & kFixedFile)) {
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &kResetLinger, sizeof(kResetLinger));
    return;
  }
  // A direct descriptor has no fd for setsockopt(2): the io_uring socket command sets it.
  // Issued before the close that follows in the same submission (both complete inline,
  // in order). Without socket commands (< 6.7) the close stays a FIN.
  if (!ring_.features().uring_cmd_sock) return;
  io_uring_sqe* sqe = ring_.Sqe();
  memset(sqe, 0, sizeof(*sqe));
  sqe->opcode = IORING_OP_URING_CMD;
  sqe->fd = c.fd;
  sqe->flags = IOSQE_FIXED_FILE;
  sqe->cmd_op = kSocketUringOpSetsockopt;
  uint32_t* level_optname = reinterpret_cast<uint32_t*>(&sqe->addr);
  level_optname[0] = SOL_SOCKET;
  level_optname[1] = SO_LINGER;
  sqe->addr3 = reinterpret_cast<uint64_t>(&kResetLinger);
  sqe->file_index = sizeof(kResetLinger);                                     // optlen
  io_uring_sqe_set_data64(sqe, io::UserData{io::Op::kNone, 0, 0, 0}.Pack());  // result unused
}

void Worker::SubmitClose(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  io_uring_sqe* sqe = ring_.Sqe();
  if (c.flags & kFixedFile) {
    io_uring_prep_close_direct(sqe, static_cast<unsigned>(c.fd));
  } else {
    io_uring_prep_close(sqe, c.fd);
  }
  io_uring_sqe_set_data64(sqe, Ud(io::Op::kClose, conn_idx));
  c.inflight++;
}

void Worker::ShutdownWrite(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & (kClosing | kShutdownPending)) return;
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_shutdown(sqe, c.fd, SHUT_WR);
  if (c.flags & kFixedFile) sqe->flags |= IOSQE_FIXED_FILE;
  io_uring_sqe_set_data64(sqe, Ud(io::Op::kShutdown, conn_idx));
  c.flags |= kShutdownPending;
  c.inflight++;
}

void Worker::OnShutdown(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  c.inflight--;
  c.flags &= ~kShutdownPending;
  if (c.flags & kCloseDeferred) {
    c.flags &= ~kCloseDeferred;
    SubmitClose(conn_idx);
  }
  MaybeFreeConn(conn_idx);
  // A tunnel's hand-over waits for this on a direct descriptor (tunnel/upgraded.cc).
  if (!(c.flags & kClosing) && c.exchange != kNil && exchanges_.Get(c.exchange).tunnel.handover) {
    tunnels_.MaybeFinishHandover(c.exchange);
  }
}

void Worker::LingeringClose(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & (kClosing | kLingering)) return;
  c.flags |= kLingering;
  c.flags &= ~kCloseAfterSend;
  ShutdownWrite(conn_idx);
  timers_.Arm(t_linger_, conn_idx, NowMs());
  c.flags &= ~kRecvPaused;
  ArmRecv(conn_idx);
}

void Worker::MaybeFreeConn(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (!(c.flags & kClosing) || c.inflight != 0) return;
  if (c.io != kNil) {
    ConnIo& io = ios_.Get(c.io);
    while (io.out_count > 0) {
      ReleaseItem(io.out[io.out_head]);
      io.out_head = (io.out_head + 1) % kOutCap;
      io.out_count--;
    }
    DropInput(conn_idx);
    ios_.Free(c.io);
    c.io = kNil;
  }
  tls_.Release(conn_idx);
  if (c.kind == ConnKind::kUpstream) {
    // Only now may its destination's slot go to another destination (destination_slots.h).
    ClusterState& cs = Cs(c.owner);
    if (cs.cfg->original_destination) cs.dst_slots.Closed(c.endpoint);
    UnrefCluster(c.owner);
  }
  c.gen++;
  c.fd = -1;
  conns_.Free(conn_idx);
}

uint64_t Worker::NowUs() const {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

void Worker::LogExchange(Exchange& ex, int status, std::string_view note) {
  if (!access_log_.enabled() || ex.logged || ex.tunnel.active) return;
  ex.logged = true;
  char ip[INET6_ADDRSTRLEN];
  std::string_view client = ClientIp(conns_.Get(ex.client), ip, sizeof(ip));
  std::string_view upstream;
  char dst[INET6_ADDRSTRLEN + 8];
  if (ex.endpoint != kNil) {
    upstream = Cs(ex.cluster).cfg->endpoint_names[ex.endpoint];
  } else if (Cs(ex.cluster).cfg->original_destination) {
    upstream = OriginalDstText(ex, dst, sizeof(dst));
  }
  char tls[96];
  AccessEntry e;
  e.client = client;
  e.request_line = std::string_view(ex.req_line, ex.req_line_len);
  e.status = status;
  e.bytes = ex.resp_bytes;
  e.duration_us = NowUs() - ex.start_us;
  e.upstream = upstream;
  e.note = note;
  e.tls = tls_.LogField(conns_.Get(ex.client), tls, sizeof(tls));
  e.request_id = std::string_view(ex.request_id, ex.request_id_len);
  e.traceparent = std::string_view(ex.traceparent, ex.traceparent_len);
  access_log_.Append(e);
}

void Worker::FreeExchange(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  CloseUpstreamOf(ex_idx);  // an HTTP/2 stream still held (normally released by now)
  h2_.ReleaseList(ex.req_data);
  h2_.ReleaseList(ex.resp_data);
  if (ex.trailer_block != kNil) blocks_.Free(ex.trailer_block);
  if (ex.req_head_block != kNil) blocks_.Free(ex.req_head_block);
  if (ex.lb_counted) Cs(ex.cluster).lb->OnConnectionClosed(ex.endpoint);
  if (ex.target != kNil) connect_.FreeConnectTarget(ex);
  UnlinkDeadline(ex_idx);
  if (ex.counts_as_retry) Cs(ex.cluster).retries--;  // before the state may go
  UnrefCluster(ex.cluster);
  if (ex.route != nullptr) ReleaseSnapshot(ex.snap_hold);
  exchanges_.Free(ex_idx);
}

// Ends an exchange that cannot complete normally: the upstream connection is closed
// (its state is unknown), and the client connection is closed if asked or if it has
// already seen part of a response (a truncated response must never look complete).
void Worker::AbortExchange(uint32_t ex_idx, bool close_client) {
  Exchange& ex = exchanges_.Get(ex_idx);
  if (ex.h2_stream != 0) {
    h2_.Reset(ex_idx);  // the stream is cut, not the client's connection
    return;
  }
  LogExchange(ex, ex.status, "aborted");
  if (ex.tunnel.active) tunnels_.ReleasePassthrough(ex);  // while both fds are still open
  CloseUpstreamOf(ex_idx);
  uint32_t client = ex.client;
  // Cut inside a response the client frames by the connection's close: a reset, so it
  // cannot mistake the cut for the end of the body.
  bool reset = close_client && ex.resp_started && ex.resp != RespState::kDone &&
               ex.down.response_framed_by_close();
  Conn& c = conns_.Get(client);
  c.exchange = kNil;
  FreeExchange(ex_idx);
  stats_.client_idle.Add();  // no exchange any more; CloseConn expects that accounting
  if (reset) ResetOnClose(client);
  if (close_client) CloseConn(client);
}

}  // namespace zproxy::dataplane
