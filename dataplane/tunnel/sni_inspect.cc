// TLS pass-through routed by SNI (HAProxy req.ssl_sni, nginx ssl_preread, Envoy's TLS
// inspector): a tcp_proxy listener with sni_routes looks at the client's ClientHello
// before it picks the cluster, without terminating TLS.
//
// The ClientHello is only peeked at (recv with MSG_PEEK), never read: its bytes stay in the
// socket's receive queue, and once the cluster is chosen the connection continues exactly
// as any tcp_proxy connection does (copy.cc, then passthrough.cc), so every mode forwards
// the ClientHello first and untouched. Nothing is held in userspace across the hand-over,
// which is what lets sockmap pair the sockets without losing or reordering a byte (the
// kernel redirects the queued bytes in order; passthrough.cc).
//
// Waiting for more: a ClientHello can arrive in several TCP segments (or TLS records).
// The parser says how many bytes would let it go further; SO_RCVLOWAT is raised to that,
// so the POLL_ADD on the socket wakes once they are all queued (or on a FIN, an RST, memory
// pressure), not on every segment. The low-water mark goes back to 1 before the hand-over.
//
// Refusals are counted per listener (zproxy_tcp_client_hello_failures_total): no complete
// ClientHello within client_hello_timeout_ms (timeout), bytes that are not one (malformed,
// decided on the first wrong byte), a FIN or RST before it was complete (closed). The
// connection is closed with the bytes still unread, so the client gets an RST.
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "dataplane/metrics/sni_counters.h"
#include "dataplane/tunnel/client_hello.h"
#include "dataplane/tunnel/tunnels.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

void Tunnels::StartHello(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  Conn& c = w_.conns_.Get(ex.client);
  ex.tunnel.hello = true;
  // The poll is on the real fd: closing the connection cancels it by fd.
  c.flags |= kPassthrough;
  w_.timers_.Arm(w_.t_client_hello_[c.owner], ex.client, w_.NowMs());
  // Usually the ClientHello is queued by the time the accept completes: no poll at all.
  InspectHello(ex_idx, false);
}

void Tunnels::InspectHello(uint32_t ex_idx, bool eof) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  uint32_t conn_idx = ex.client;
  Conn& c = w_.conns_.Get(conn_idx);
  if (hello_buf_ == nullptr)
    hello_buf_ = std::make_unique<char[]>(2 * tunnel::kMaxClientHelloBytes);
  char* peeked = hello_buf_.get();
  ssize_t n = recv(c.fd, peeked, tunnel::kMaxClientHelloBytes, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    HelloFailed(ex_idx, static_cast<int>(HelloFailure::kClosed));  // reset
    return;
  }
  if (n == 0) {
    HelloFailed(ex_idx, static_cast<int>(HelloFailure::kClosed));  // FIN, nothing sent
    return;
  }
  tunnel::ClientHelloInfo hello;
  tunnel::HelloResult r =
      tunnel::ParseClientHello(std::string_view(peeked, n > 0 ? static_cast<size_t>(n) : 0),
                               peeked + tunnel::kMaxClientHelloBytes, &hello);
  if (r.status == tunnel::HelloStatus::kMalformed) {
    HelloFailed(ex_idx, static_cast<int>(HelloFailure::kMalformed));
    return;
  }
  if (r.status == tunnel::HelloStatus::kNeedMore) {
    if (eof) {
      HelloFailed(ex_idx, static_cast<int>(HelloFailure::kClosed));
      return;
    }
    // Nothing yet: wake on the first byte, so that garbage is refused at once. Then on
    // the bytes the parser needs next.
    if (n > 0 && r.need > 1) {
      int lowat = static_cast<int>(r.need);
      setsockopt(c.fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
      ex.tunnel.hello_lowat = true;
    }
    io_uring_sqe* sqe = w_.ring_.Sqe();
    io_uring_prep_poll_add(sqe, c.fd, POLLIN | POLLRDHUP);
    io_uring_sqe_set_data64(sqe, w_.Ud(io::Op::kHelloPoll, conn_idx));
    c.inflight++;
    return;
  }
  const ListenerRuntime& listener = w_.snap_->listeners[c.owner];
  int entry = tunnel::SniRouter::kDefault;
  if (listener.sni != nullptr) {  // (null: a config change dropped sni_routes meanwhile)
    entry = listener.sni->router->Pick(hello);
    listener.sni->RoutedCounter(entry)->fetch_add(1, std::memory_order_relaxed);
  }
  RouteByHello(ex_idx, entry);
}

void Tunnels::RouteByHello(uint32_t ex_idx, int entry) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  Conn& c = w_.conns_.Get(ex.client);
  const ListenerRuntime& listener = w_.snap_->listeners[c.owner];
  int cluster =
      listener.sni != nullptr ? listener.sni->router->cluster(entry) : listener.tcp_cluster;
  uint16_t id = w_.clusters_.ForCluster(static_cast<size_t>(cluster));
  if (id != ex.cluster) {
    w_.RefCluster(id);
    w_.UnrefCluster(ex.cluster);
    ex.cluster = id;
  }
  ex.tunnel.hello = false;
  if (ex.tunnel.hello_lowat) {
    // Back to the default before any mode reads or pairs the socket.
    int one = 1;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
    ex.tunnel.hello_lowat = false;
  }
  c.flags &= ~kPassthrough;  // no op pending; ConnectTcpProxy sets it again for its modes
  ConnectTcpProxy(ex_idx);
}

void Tunnels::OnHelloPoll(uint32_t conn_idx, int res) {
  Conn& c = w_.conns_.Get(conn_idx);
  c.inflight--;
  if (c.flags & kClosing) {
    w_.MaybeFreeConn(conn_idx);
    return;
  }
  if (c.exchange == kNil || !w_.exchanges_.Get(c.exchange).tunnel.hello) return;
  uint32_t ex_idx = c.exchange;
  if (res < 0 || (res & POLLERR)) {
    HelloFailed(ex_idx, static_cast<int>(HelloFailure::kClosed));
    return;
  }
  // With a FIN the bytes queued before it may still make a whole ClientHello.
  InspectHello(ex_idx, (res & (POLLRDHUP | POLLHUP)) != 0);
}

void Tunnels::OnHelloTimeout(uint32_t conn_idx) {
  HelloFailed(w_.conns_.Get(conn_idx).exchange, static_cast<int>(HelloFailure::kTimeout));
}

void Tunnels::HelloFailed(uint32_t ex_idx, int reason) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  const ListenerRuntime& listener = w_.snap_->listeners[w_.conns_.Get(ex.client).owner];
  if (listener.sni != nullptr) {
    (*listener.sni->failures)[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
  }
  ex.tunnel.hello = false;
  // Closes the client (cancelling a pending poll by fd) and frees the exchange.
  w_.AbortExchange(ex_idx, true);
}

}  // namespace zproxy::dataplane
