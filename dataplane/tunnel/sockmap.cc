// Sockmap mode: both sockets of a tcp_proxy connection go into zproxyd's SOCKHASH and the
// sk_skb verdict program (bpf/sockmap.bpf.c) redirects every skb to the peer's egress
// inside the kernel. The worker only watches for FIN, errors and idleness.
//
// Ordering at the pairing: nothing has been read from either socket, so every byte that
// arrived so far sits in a receive queue. AddPairKeys makes both sockets redirect targets
// before it arms either verdict, so whatever runs the verdict (data, a FIN) finds the
// peer. The verdict runs from data_ready, which TCP calls only once SO_RCVLOWAT bytes
// are queued (or on a FIN): the gate (a huge low-water mark) keeps it idle during the
// insertion, so a pairing refused half-way has normally moved nothing and falls back
// cleanly; releasing the gate calls data_ready at once, so the queued bytes go first and
// in order (splice_map_test).
//
// FIN is not redirected (the program sees no skb for it): the source polls POLLRDHUP, and
// the worker forwards it with shutdown(SHUT_WR) once the destination has been written
// everything the source received (tcp_info byte counts; the redirect runs from a kernel
// work queue, so it can trail the FIN). RST shows as POLLERR and resets the other side.
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/splice_pairs.h"
#include "dataplane/io/tcp_counters.h"
#include "dataplane/tunnel/tunnels.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

bool Tunnels::StartSockmap(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  int cfd = w_.conns_.Get(ex.client).fd;
  int ufd = w_.conns_.Get(ex.upstream).fd;
  if (!SockKeyOf(cfd, &ex.tunnel.client_key) || !SockKeyOf(ufd, &ex.tunnel.upstream_key)) {
    return false;  // not TCP
  }
  // Byte counts before the insertion: once in the map, SIOCINQ reports the psock's queue
  // instead of the receive queue.
  io::TcpCounters c, u;
  ReadTcpCounters(cfd, &c);
  ReadTcpCounters(ufd, &u);
  GateVerdict(cfd, true);
  GateVerdict(ufd, true);
  std::string error;
  PairResult paired = AddPairKeys(w_.options_.passthrough.pairs_fd, w_.options_.passthrough.peer_fd,
                                  cfd, ex.tunnel.client_key, ufd, ex.tunnel.upstream_key, &error);
  if (paired != PairResult::kPaired) {
    GateVerdict(cfd, false);
    GateVerdict(ufd, false);
    io::TcpCounters c2, u2;
    ReadTcpCounters(cfd, &c2);  // out of every map again: SIOCINQ is the receive queue
    ReadTcpCounters(ufd, &u2);
    if (paired == PairResult::kRefusedAfterArming && c2.consumed_data() != c.consumed_data()) {
      // The client's verdict ran (gate bypassed by a FIN or memory pressure) and moved
      // bytes towards the upstream before the upstream was refused: their sending may
      // have been cut short by the unlinking, so no other mode can continue intact.
      w_.stats_.sockmap_stragglers.Add();
      ex.tunnel.pairing_moved_bytes = true;
      return false;
    }
    // The kernel takes ESTABLISHED sockets only: a side whose FIN arrived before the
    // pairing (a short request, a banner) is refused as a matter of course. Anything
    // else is worth one line per worker.
    if (!c2.fin && !u2.fin && c2.error == 0 && u2.error == 0 && !pass_warned_) {
      pass_warned_ = true;
      ZLOG_WARN("worker %u: sockmap pairing failed (%s): connection spliced instead",
                w_.options_.index, error.c_str());
    }
    return false;
  }
  ex.tunnel.paired = true;
  ex.tunnel.client_rx_base = c.consumed();
  ex.tunnel.upstream_rx_base = u.consumed();
  ex.tunnel.client_tx_base = c.written();
  ex.tunnel.upstream_tx_base = u.written();
  ex.tunnel.activity = c.received + u.received;
  GateVerdict(cfd, false);  // data_ready now: the queued bytes are redirected, in order
  GateVerdict(ufd, false);
  ArmWatch(ex.client);
  ArmWatch(ex.upstream);
  return true;
}

void Tunnels::ArmWatch(uint32_t conn_idx) {
  Conn& c = w_.conns_.Get(conn_idx);
  io_uring_sqe* sqe = w_.ring_.Sqe();
  // Not POLLIN: the socket's data_ready wakes pollers after every redirected skb, and a
  // POLLIN watch would turn each into a worker wakeup. io_uring always adds POLLERR,
  // POLLHUP and POLLRDHUP.
  io_uring_prep_poll_add(sqe, c.fd, POLLRDHUP);
  io_uring_sqe_set_data64(sqe, w_.Ud(io::Op::kWatch, conn_idx));
  c.inflight++;
}

void Tunnels::OnWatch(uint32_t conn_idx, int res) {
  uint32_t ex_idx = PassthroughOpDone(conn_idx);
  if (ex_idx == kNil || res == -ECANCELED) return;
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (res < 0 || (res & POLLERR)) {
    AbortPassthrough(ex_idx, true);  // RST or error: the other side gets an RST too
    return;
  }
  // FIN (POLLRDHUP; POLLHUP once our side is shut too). Nothing can be readable: the
  // verdict redirects or drops, it never passes bytes to the socket. Should bytes show
  // up anyway, forwarding them now could reorder the stream: the connection is reset
  // instead (counted).
  char probe;
  if (recv(w_.conns_.Get(conn_idx).fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
    w_.stats_.sockmap_stragglers.Add();
    AbortPassthrough(ex_idx, true);
    return;
  }
  if (conn_idx == ex.client) {
    ex.tunnel.client_eof = true;
  } else {
    ex.tunnel.upstream_eof = true;
  }
  if (ForwardSockmapFins(ex_idx)) return;
  Exchange& ex2 = w_.exchanges_.Get(ex_idx);
  if (!ex2.tunnel.watched) {
    ex2.tunnel.watched = true;
    pass_watch_.emplace_back(ex2.client, w_.conns_.Get(ex2.client).gen);
  }
}

bool Tunnels::ForwardSockmapFins(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  int cfd = w_.conns_.Get(ex.client).fd;
  int ufd = w_.conns_.Get(ex.upstream).fd;
  io::TcpCounters c, u;
  if (!ReadTcpCounters(cfd, &c) || !ReadTcpCounters(ufd, &u)) {
    AbortPassthrough(ex_idx, true);
    return true;
  }
  // Everything the source's verdict consumed has been written into the destination. The
  // source's count includes its FIN (tcpi_bytes_received follows rcv_nxt): minus 1.
  if (ex.tunnel.client_eof && !ex.tunnel.upstream_wr_shut &&
      u.written() - ex.tunnel.upstream_tx_base >= c.consumed() - ex.tunnel.client_rx_base - 1) {
    w_.ShutdownWrite(ex.upstream);
    ex.tunnel.upstream_wr_shut = true;
  }
  if (ex.tunnel.upstream_eof && !ex.tunnel.client_wr_shut &&
      c.written() - ex.tunnel.client_tx_base >= u.consumed() - ex.tunnel.upstream_rx_base - 1) {
    w_.ShutdownWrite(ex.client);
    ex.tunnel.client_wr_shut = true;
  }
  if (ex.tunnel.upstream_wr_shut && ex.tunnel.client_wr_shut) {
    FinishPassthrough(ex_idx);
    return true;
  }
  return false;
}

}  // namespace zproxy::dataplane
