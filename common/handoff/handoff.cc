#include "common/handoff/handoff.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace zproxy::handoff {
namespace {

constexpr char kMagic[4] = {'Z', 'P', 'B', '1'};

struct Header {
  char magic[4];
  uint32_t fd_count;
  uint64_t payload_len;
};
static_assert(sizeof(Header) == 16);

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

bool SendAll(int sock, const void* data, size_t len, std::string* error) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::send(sock, p, len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = Errno("send to data plane control socket");
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool SendFdChunk(int sock, std::span<const int> fds, std::string* error) {
  char byte = 'F';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  for (;;) {
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n == 1) return true;
    if (n < 0 && errno == EINTR) continue;
    *error = Errno("sendmsg with listen fds (SCM_RIGHTS)");
    return false;
  }
}

bool WaitReadable(int sock, int timeout_ms, std::string* error) {
  if (timeout_ms < 0) return true;
  pollfd p{sock, POLLIN, 0};
  for (;;) {
    int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) return true;
    if (r == 0) {
      *error = "timed out after " + std::to_string(timeout_ms) + " ms waiting for zproxyd";
      return false;
    }
    if (errno != EINTR) {
      *error = Errno("poll on control socket");
      return false;
    }
  }
}

// Receives exactly `len` bytes as one piece the sender sent with the same size. On a
// SOCK_STREAM socket it may take several reads; on SOCK_SEQPACKET it is one record, and
// MSG_TRUNC would mean the two ends disagree about the framing.
bool RecvExact(int sock, void* data, size_t len, int timeout_ms, const char* what,
               std::string* error) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < len) {
    if (!WaitReadable(sock, timeout_ms, error)) return false;
    iovec iov{p + got, len - got};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = Errno((std::string("receive ") + what).c_str());
      return false;
    }
    if (n == 0) {
      *error = std::string("control socket closed while receiving ") + what + " (got " +
               std::to_string(got) + " of " + std::to_string(len) + " bytes)";
      return false;
    }
    if (msg.msg_flags & MSG_TRUNC) {
      *error = std::string("framing mismatch receiving ") + what + " (record truncated)";
      return false;
    }
    got += static_cast<size_t>(n);
  }
  return true;
}

// Receives one fd chunk: a 1-byte record with up to `want` fds attached.
bool RecvFdChunk(int sock, size_t want, std::vector<UniqueFd>* fds, int timeout_ms,
                 std::string* error) {
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  for (;;) {
    if (!WaitReadable(sock, timeout_ms, error)) return false;
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0 || errno != EINTR) break;
  }
  if (n < 0) {
    *error = Errno("receive listen fds");
    return false;
  }
  if (n == 0) {
    *error = "control socket closed while receiving listen fds";
    return false;
  }
  // Take ownership of whatever arrived first, so nothing leaks on the error paths below.
  size_t got = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds->emplace_back(fd);
      ++got;
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    *error = "listen fds were truncated in transit (is RLIMIT_NOFILE too low for " +
             std::to_string(want) + " more fds?)";
    return false;
  }
  if (byte != 'F' || got != want) {
    *error = "framing mismatch: expected a chunk of " + std::to_string(want) + " fds, got " +
             std::to_string(got);
    return false;
  }
  return true;
}

}  // namespace

size_t ExpectedFdCount(const zproxy::v1::DataplaneBootstrap& bootstrap) {
  size_t n = static_cast<size_t>(bootstrap.sockets_size());
  if (bootstrap.has_health_region_fd_index()) n++;
  if (bootstrap.has_splice_pairs_fd_index()) n++;
  if (bootstrap.has_splice_peer_fd_index()) n++;
  if (bootstrap.has_splice_counters_fd_index()) n++;
  if (bootstrap.has_sidecar_orig_by_peer_fd_index()) n++;
  if (bootstrap.has_sidecar_local_hops_fd_index()) n++;
  return n;
}

bool SendBootstrap(int sock, const zproxy::v1::DataplaneBootstrap& bootstrap,
                   std::span<const int> fds, std::string* error) {
  if (fds.size() != ExpectedFdCount(bootstrap)) {
    *error = "bootstrap announces " + std::to_string(ExpectedFdCount(bootstrap)) + " fds but " +
             std::to_string(fds.size()) + " were given";
    return false;
  }
  std::string payload;
  if (!bootstrap.SerializeToString(&payload)) {
    *error = "cannot serialize DataplaneBootstrap";
    return false;
  }
  if (payload.size() > kMaxPayloadBytes) {
    *error = "bootstrap is " + std::to_string(payload.size()) + " bytes, over the limit of " +
             std::to_string(kMaxPayloadBytes);
    return false;
  }
  Header h;
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.fd_count = static_cast<uint32_t>(fds.size());
  h.payload_len = payload.size();
  if (!SendAll(sock, &h, sizeof(h), error)) return false;
  for (size_t i = 0; i < fds.size(); i += kMaxFdsPerMessage) {
    if (!SendFdChunk(sock, fds.subspan(i, std::min(kMaxFdsPerMessage, fds.size() - i)), error)) {
      return false;
    }
  }
  for (size_t off = 0; off < payload.size(); off += kMaxPayloadPiece) {
    if (!SendAll(sock, payload.data() + off, std::min(kMaxPayloadPiece, payload.size() - off),
                 error)) {
      return false;
    }
  }
  return true;
}

bool ReceiveBootstrap(int sock, zproxy::v1::DataplaneBootstrap* bootstrap,
                      std::vector<UniqueFd>* fds, std::string* error, int timeout_ms) {
  std::vector<UniqueFd> received;
  Header h;
  if (!RecvExact(sock, &h, sizeof(h), timeout_ms, "bootstrap header", error)) return false;
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) {
    *error = "bad bootstrap header magic (not zproxyd on the other end, or a version mismatch)";
    return false;
  }
  if (h.payload_len > kMaxPayloadBytes) {
    *error = "bootstrap header announces " + std::to_string(h.payload_len) +
             " bytes, over the limit of " + std::to_string(kMaxPayloadBytes);
    return false;
  }
  received.reserve(h.fd_count);
  for (size_t left = h.fd_count; left > 0;) {
    size_t want = std::min(kMaxFdsPerMessage, left);
    if (!RecvFdChunk(sock, want, &received, timeout_ms, error)) return false;
    left -= want;
  }
  std::string payload(h.payload_len, '\0');
  for (size_t off = 0; off < payload.size(); off += kMaxPayloadPiece) {
    size_t len = std::min(kMaxPayloadPiece, payload.size() - off);
    if (!RecvExact(sock, payload.data() + off, len, timeout_ms, "bootstrap message", error)) {
      return false;
    }
  }
  zproxy::v1::DataplaneBootstrap parsed;
  if (!parsed.ParseFromString(payload)) {
    *error = "cannot parse DataplaneBootstrap (" + std::to_string(payload.size()) + " bytes)";
    return false;
  }
  if (ExpectedFdCount(parsed) != received.size()) {
    *error = "bootstrap announces " + std::to_string(ExpectedFdCount(parsed)) + " fds but " +
             std::to_string(received.size()) + " arrived";
    return false;
  }
  *bootstrap = std::move(parsed);
  *fds = std::move(received);
  return true;
}

}  // namespace zproxy::handoff
