// A TCP socket's byte counts from the kernel (TCP_INFO, SIOCINQ, SIOCOUTQ). Sockmap
// pass-through never sees its bytes, so this is how the data plane tells that the
// kernel has moved everything (before forwarding a FIN), counts the bytes, and notices
// idleness.
#pragma once

#include <cstdint>

namespace zproxy::io {

struct TcpCounters {
  uint64_t received = 0;  // tcpi_bytes_received: payload bytes that arrived
  uint64_t acked = 0;     // tcpi_bytes_acked: payload bytes the peer acknowledged
  uint32_t inq = 0;       // received, not yet consumed (SIOCINQ)
  uint32_t outq = 0;      // written, not yet acknowledged (SIOCOUTQ)
  bool fin = false;       // the peer's FIN arrived (CLOSE_WAIT, or later states)
  int error = 0;          // pending socket error (SO_ERROR, cleared by reading): ECONNRESET
                          // after an RST. The state alone cannot tell: a clean close that
                          // ends in TIME_WAIT also leaves the socket in TCP_CLOSE.

  // Bytes taken out of the receive queue (by a reader or the verdict program).
  uint64_t consumed() const { return received - inq; }
  // Bytes taken out of the receive queue, the FIN not counted: TCP counts a FIN in
  // tcpi_bytes_received but leaves it out of SIOCINQ, so consumed() grows by 1 when one
  // arrives although nothing was taken.
  uint64_t consumed_data() const { return consumed() - (fin ? 1 : 0); }
  // Bytes written into the socket (sent or still queued).
  uint64_t written() const { return acked + outq; }
};

bool ReadTcpCounters(int fd, TcpCounters* out);

}  // namespace zproxy::io
