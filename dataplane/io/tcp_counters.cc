#include "dataplane/io/tcp_counters.h"

// linux/tcp.h, not netinet/tcp.h: glibc's struct tcp_info stops before the byte counters.
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

namespace zproxy::io {
namespace {
// TCP states in which the peer's FIN has arrived (include/net/tcp_states.h; glibc's enum
// in netinet/tcp.h clashes with linux/tcp.h).
constexpr uint8_t kTimeWait = 6, kCloseWait = 8, kLastAck = 9, kClosing = 11;
}  // namespace

bool ReadTcpCounters(int fd, TcpCounters* out) {
  // TCP_INFO and the two ioctls are separate reads: a segment (or an ACK) arriving between
  // them would make received - inq (or acked + outq) off by its size. Retry until the queue
  // sizes did not move across the TCP_INFO read.
  tcp_info ti{};
  int inq = 0, outq = 0;
  for (int attempt = 0; attempt < 8; attempt++) {
    int inq0 = 0, outq0 = 0;
    ioctl(fd, SIOCINQ, &inq0);
    ioctl(fd, SIOCOUTQ, &outq0);
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
    ioctl(fd, SIOCINQ, &inq);
    ioctl(fd, SIOCOUTQ, &outq);
    if (inq == inq0 && outq == outq0) break;
  }
  out->received = ti.tcpi_bytes_received;
  out->fin = ti.tcpi_state == kCloseWait || ti.tcpi_state == kLastAck ||
             ti.tcpi_state == kClosing || ti.tcpi_state == kTimeWait;
  out->acked = ti.tcpi_bytes_acked;
  out->inq = inq > 0 ? static_cast<uint32_t>(inq) : 0;
  out->outq = outq > 0 ? static_cast<uint32_t>(outq) : 0;
  socklen_t elen = sizeof(out->error);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &out->error, &elen);
  return true;
}

}  // namespace zproxy::io
