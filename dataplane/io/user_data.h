// Packing of io_uring user_data: operation kind, connection slot, slot generation and
// (for sends from provided buffers) the buffer id. The generation makes a late
// completion for a closed connection harmless: the slot may have been reused, and a
// mismatching generation means "not yours" (the CQE's buffer is still recycled).
#pragma once

#include <cstdint>

namespace zproxy::io {

enum class Op : uint8_t {
  kNone = 0,
  kAccept,    // multishot accept on a listen socket (slot = listener socket index)
  kRecv,      // multishot recv (slot = connection)
  kSend,      // send/sendmsg (slot = connection)
  kSendZc,    // zero-copy send; NOTIF CQE carries the buffer id to recycle
  kConnect,   // upstream connect
  kClose,     // close of a socket (slot = connection)
  kCancel,    // cancellation request (result ignored)
  kPeerName,  // getsockopt(SO_PEERNAME) through IORING_OP_URING_CMD
  kTick,      // periodic timer
  kShutdown,  // shutdown(SHUT_WR) of a socket (slot = connection)
  kWake,      // eventfd read: another thread wants the worker's attention
  // Pass-through in sockmap/splice mode (slot = connection):
  kWatch,       // POLL_ADD for POLLRDHUP/POLLERR on a spliced socket (sockmap mode)
  kSplicePoll,  // POLL_ADD linked in front of a splice (readiness; result unused)
  kSpliceIn,    // splice socket -> pipe (slot = the source connection)
  kSpliceOut,   // splice pipe -> socket (slot = the destination connection)
  kFdInstall,   // IORING_OP_FIXED_FD_INSTALL: a client's direct descriptor -> regular fd
  kHelloPoll,   // POLL_ADD waiting for more of a ClientHello (tcp_proxy with sni_routes)
};

struct UserData {
  Op op = Op::kNone;
  uint32_t slot = 0;  // 24 bits
  uint16_t gen = 0;
  uint16_t bid = 0;  // buffer id + 1 for kSendZc (0 = none)

  uint64_t Pack() const {
    return static_cast<uint64_t>(op) | (static_cast<uint64_t>(slot & 0xffffff) << 8) |
           (static_cast<uint64_t>(gen) << 32) | (static_cast<uint64_t>(bid) << 48);
  }
  static UserData Unpack(uint64_t v) {
    UserData u;
    u.op = static_cast<Op>(v & 0xff);
    u.slot = static_cast<uint32_t>((v >> 8) & 0xffffff);
    u.gen = static_cast<uint16_t>(v >> 32);
    u.bid = static_cast<uint16_t>(v >> 48);
    return u;
  }
};

constexpr uint32_t kMaxSlots = 1u << 24;

}  // namespace zproxy::io
