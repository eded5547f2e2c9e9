#include "dataplane/io/tcp_counters.h"

// linux/tcp.h, not netinet/tcp.h: glibc's struct tcp_info stops before the byte counters.
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

namespace zproxy::io {

bool ReadTcpCounters(int fd, TcpCounters* out) {
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
  int inq = 0, outq = 0;
  ioctl(fd, SIOCINQ, &inq);
  ioctl(fd, SIOCOUTQ, &outq);
  out->received = ti.tcpi_bytes_received;
  out->acked = ti.tcpi_bytes_acked;
  out->inq = inq > 0 ? static_cast<uint32_t>(inq) : 0;
  out->outq = outq > 0 ? static_cast<uint32_t>(outq) : 0;
  socklen_t elen = sizeof(out->error);
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &out->error, &elen);
  return true;
}

}  // namespace zproxy::io
