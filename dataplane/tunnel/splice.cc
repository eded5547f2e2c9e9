// Splice mode: each direction moves socket -> pipe -> socket with IORING_OP_SPLICE, so
// the bytes stay in kernel pages (no copy into the worker's buffers). One 64 KiB pipe per
// direction bounds what a connection holds (a chunk is read only once the previous one is
// out); the directions run independently.
//
// io_uring runs splice on its worker threads and, for a nonblocking socket, a splice with
// nothing to move fails with EAGAIN instead of waiting. So a splice-in is linked behind a
// POLL_ADD (POLLIN) on its source and a splice-out behind a POLL_ADD (POLLOUT) when the
// destination was full: an idle connection holds two polls, no thread.
//
// EOF: a splice-in of 0 bytes; once the pipe is empty the FIN goes on with
// shutdown(SHUT_WR) and the other direction keeps going. An error on either socket (RST)
// resets the other one.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "dataplane/tunnel/tunnels.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

namespace {
constexpr uint32_t kPipeBytes = 64 * 1024;
constexpr unsigned kSpliceFlags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
}  // namespace

bool Tunnels::StartSplice(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  for (TunnelState::SpliceDir& d : ex.tunnel.dirs) {
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
      ReleasePassthrough(ex);
      return false;
    }
    d.rd = p[0];
    d.wr = p[1];
    fcntl(d.wr, F_SETPIPE_SZ, static_cast<int>(kPipeBytes));
  }
  SpliceFill(ex_idx, 0);
  SpliceFill(ex_idx, 1);
  return true;
}

// dir 0: client -> upstream, dir 1: upstream -> client.
void Tunnels::SpliceFill(uint32_t ex_idx, int dir) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  TunnelState::SpliceDir& d = ex.tunnel.dirs[dir];
  bool eof = dir == 0 ? ex.tunnel.client_eof : ex.tunnel.upstream_eof;
  // Only into an empty pipe: a pipe has 16 slots, not 64 KiB, and a splice into a pipe
  // whose slots are taken fails with EAGAIN while POLLIN stays true (a busy loop).
  if (d.in_busy || eof || d.bytes != 0) return;
  uint32_t src = dir == 0 ? ex.client : ex.upstream;
  Conn& s = w_.conns_.Get(src);
  io_uring_sqe* poll = w_.ring_.Sqe();
  io_uring_prep_poll_add(poll, s.fd, POLLIN);
  io_uring_sqe_set_data64(poll, w_.Ud(io::Op::kSplicePoll, src));
  poll->flags |= IOSQE_IO_LINK;
  io_uring_sqe* sqe = w_.ring_.Sqe();
  io_uring_prep_splice(sqe, s.fd, -1, d.wr, -1, kPipeBytes, kSpliceFlags);
  io_uring_sqe_set_data64(sqe, w_.Ud(io::Op::kSpliceIn, src));
  s.inflight += 2;
  d.in_busy = true;
}

void Tunnels::SpliceDrain(uint32_t ex_idx, int dir, bool poll_first) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  TunnelState::SpliceDir& d = ex.tunnel.dirs[dir];
  if (d.out_busy || d.bytes == 0) return;
  uint32_t dst = dir == 0 ? ex.upstream : ex.client;
  Conn& t = w_.conns_.Get(dst);
  if (poll_first) {
    io_uring_sqe* poll = w_.ring_.Sqe();
    io_uring_prep_poll_add(poll, t.fd, POLLOUT);
    io_uring_sqe_set_data64(poll, w_.Ud(io::Op::kSplicePoll, dst));
    poll->flags |= IOSQE_IO_LINK;
    t.inflight++;
  }
  io_uring_sqe* sqe = w_.ring_.Sqe();
  io_uring_prep_splice(sqe, d.rd, -1, t.fd, -1, d.bytes, kSpliceFlags);
  io_uring_sqe_set_data64(sqe, w_.Ud(io::Op::kSpliceOut, dst));
  t.inflight++;
  d.out_busy = true;
}

void Tunnels::OnSpliceIn(uint32_t conn_idx, int res) {
  uint32_t ex_idx = PassthroughOpDone(conn_idx);
  if (ex_idx == kNil) return;
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  int dir = conn_idx == ex.client ? 0 : 1;
  TunnelState::SpliceDir& d = ex.tunnel.dirs[dir];
  d.in_busy = false;
  if (res > 0) {
    d.bytes += static_cast<uint32_t>(res);
    w_.stats_.tcp_proxy_bytes.Add(static_cast<uint64_t>(res));
    w_.timers_.Arm(IdleList(ex), ex.client, w_.NowMs());
    SpliceDrain(ex_idx, dir, false);
    return;
  }
  if (res == 0) {
    if (dir == 0) {
      ex.tunnel.client_eof = true;
    } else {
      ex.tunnel.upstream_eof = true;
    }
    MaybeEndSpliceDir(ex_idx, dir);
    return;
  }
  if (res == -EAGAIN || res == -ECANCELED) {
    // Woken without data (or the linked poll was cancelled by a spurious failure).
    SpliceFill(ex_idx, dir);
    return;
  }
  AbortPassthrough(ex_idx, true);  // ECONNRESET and friends
}

void Tunnels::OnSpliceOut(uint32_t conn_idx, int res) {
  uint32_t ex_idx = PassthroughOpDone(conn_idx);
  if (ex_idx == kNil) return;
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  int dir = conn_idx == ex.upstream ? 0 : 1;
  TunnelState::SpliceDir& d = ex.tunnel.dirs[dir];
  d.out_busy = false;
  if (res > 0) {
    d.bytes -= static_cast<uint32_t>(res);
    if (d.bytes != 0) {
      SpliceDrain(ex_idx, dir, false);  // short write: the rest, as soon as it fits
      return;
    }
    SpliceFill(ex_idx, dir);  // the pipe is empty: read the next chunk
    MaybeEndSpliceDir(ex_idx, dir);
    return;
  }
  if (res == -EAGAIN || res == -ECANCELED) {
    SpliceDrain(ex_idx, dir, true);  // the destination is full: wait for POLLOUT
    return;
  }
  AbortPassthrough(ex_idx, true);  // EPIPE / ECONNRESET: the destination is gone
}

void Tunnels::MaybeEndSpliceDir(uint32_t ex_idx, int dir) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  TunnelState::SpliceDir& d = ex.tunnel.dirs[dir];
  bool eof = dir == 0 ? ex.tunnel.client_eof : ex.tunnel.upstream_eof;
  bool shut = dir == 0 ? ex.tunnel.upstream_wr_shut : ex.tunnel.client_wr_shut;
  if (!eof || shut || d.bytes != 0 || d.out_busy) return;
  w_.ShutdownWrite(dir == 0 ? ex.upstream : ex.client);
  if (dir == 0) {
    ex.tunnel.upstream_wr_shut = true;
  } else {
    ex.tunnel.client_wr_shut = true;
  }
  if (ex.tunnel.upstream_wr_shut && ex.tunnel.client_wr_shut && !ex.tunnel.dirs[0].in_busy &&
      !ex.tunnel.dirs[1].in_busy) {
    FinishPassthrough(ex_idx);
  }
}

}  // namespace zproxy::dataplane
