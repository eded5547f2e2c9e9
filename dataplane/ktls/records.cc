#include "dataplane/ktls/records.h"

#include <errno.h>
#include <linux/tls.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace zproxy::ktls {
namespace {

// TLS handshake message types (RFC 8446 section 4).
constexpr uint8_t kNewSessionTicket = 4;
constexpr uint8_t kKeyUpdate = 24;

}  // namespace

int SendControlRecord(int fd, RecordType type, const void* data, size_t len) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint8_t))] = {};
  iovec iov{const_cast<void*>(data), len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_TLS;
  cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
  cmsg->cmsg_len = CMSG_LEN(sizeof(uint8_t));
  *CMSG_DATA(cmsg) = static_cast<uint8_t>(type);
  for (;;) {
    const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n >= 0) {
      // A control record is sealed as one record: the kernel takes all of it or nothing.
      return static_cast<size_t>(n) == len ? 0 : EIO;
    }
    if (errno != EINTR) return errno;
  }
}

int SendAlert(int fd, uint8_t level, uint8_t description) {
  const uint8_t alert[2] = {level, description};
  return SendControlRecord(fd, RecordType::kAlert, alert, sizeof(alert));
}

RxKind ClassifyHandshake(const uint8_t* data, size_t len, bool* key_update_requested) {
  // A record may carry several messages: 1-byte type, 3-byte length, body. Only whole
  // NewSessionTickets (dropped) and KeyUpdate are expected after the handshake.
  bool saw_ticket = false;
  size_t off = 0;
  while (off < len) {
    if (len - off < 4) return RxKind::kUnexpectedHandshake;
    const uint8_t type = data[off];
    const size_t body =
        (size_t{data[off + 1]} << 16) | (size_t{data[off + 2]} << 8) | data[off + 3];
    if (body > len - off - 4) return RxKind::kUnexpectedHandshake;  // split across records
    if (type == kKeyUpdate) {
      if (body != 1 || data[off + 4] > 1) return RxKind::kUnexpectedHandshake;
      *key_update_requested = data[off + 4] == 1;
      return RxKind::kKeyUpdate;
    }
    if (type != kNewSessionTicket) return RxKind::kUnexpectedHandshake;
    saw_ticket = true;
    off += 4 + body;
  }
  return saw_ticket ? RxKind::kNewSessionTicket : RxKind::kUnexpectedHandshake;
}

RxResult RecvRecord(int fd, void* buf, size_t len, int flags) {
  RxResult r;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(uint8_t))];
  iovec iov{buf, len};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    r.error = errno;
    r.kind = (errno == EAGAIN || errno == EWOULDBLOCK) ? RxKind::kWouldBlock : RxKind::kError;
    return r;
  }
  r.bytes = static_cast<size_t>(n);
  uint8_t type = static_cast<uint8_t>(RecordType::kApplicationData);
  bool typed = false;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE) {
      type = *CMSG_DATA(c);
      typed = true;
    }
  }
  if (n == 0 && !typed) {
    r.kind = RxKind::kEof;
    return r;
  }
  const auto* p = static_cast<const uint8_t*>(buf);
  switch (static_cast<RecordType>(type)) {
    case RecordType::kApplicationData:
      r.kind = RxKind::kData;
      return r;
    case RecordType::kAlert:
      if (n < 2) {
        r.kind = RxKind::kUnexpectedHandshake;
        return r;
      }
      r.alert_level = p[0];
      r.alert_description = p[1];
      r.kind = p[1] == kAlertCloseNotify ? RxKind::kCloseNotify : RxKind::kAlert;
      return r;
    case RecordType::kHandshake:
      r.kind = ClassifyHandshake(p, r.bytes, &r.key_update_requested);
      return r;
    default:
      r.kind = RxKind::kUnexpectedHandshake;
      return r;
  }
}

}  // namespace zproxy::ktls
