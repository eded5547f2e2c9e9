#include "controlplane/sync/adoption.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/handoff/handoff.h"

namespace zproxy::sync {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

bool IsUnixSeqpacket(int fd) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) != 0 || v != AF_UNIX) return false;
  len = sizeof(v);
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0 && v == SOCK_SEQPACKET;
}

}  // namespace

bool OpenAdoption(pid_t pid, const zproxy::v1::Hello& hello, AdoptionHandle* out,
                  std::string* error) {
  if (!hello.has_adoption_fd()) {
    *error = "its Hello names no adoption channel";
    return false;
  }
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) {
    *error = Errno("pidfd_open");
    return false;
  }
  UniqueFd channel(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), hello.adoption_fd(), 0)));
  if (!channel.valid()) {
    *error = Errno("pidfd_getfd(fd " + std::to_string(hello.adoption_fd()) + ")");
    return false;
  }
  if (!IsUnixSeqpacket(channel.get())) {
    *error = "fd " + std::to_string(hello.adoption_fd()) + " is not a unix SEQPACKET socket";
    return false;
  }
  // An answer a dead zproxyd never read must not pass for ours.
  char stale;
  while (recv(channel.get(), &stale, 1, MSG_DONTWAIT) == 1) {
  }
  out->pid = pid;
  out->pidfd = std::move(pidfd);
  out->channel = std::move(channel);
  return true;
}

bool SendHealthRegion(int channel, const zproxy::v1::DataplaneBootstrap& message,
                      const std::vector<int>& fds, int timeout_ms, std::string* error) {
  if (!handoff::SendBootstrap(channel, message, fds, error)) return false;
  pollfd p{channel, POLLIN, 0};
  int r;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r == 0) {
    *error = "no answer within " + std::to_string(timeout_ms) + " ms";
    return false;
  }
  char answer = 0;
  if (r < 0 || recv(channel, &answer, 1, MSG_DONTWAIT) != 1) {
    *error = Errno("reading the answer");
    return false;
  }
  if (answer != 'R') {
    *error = "the data plane could not map it (see its log)";
    return false;
  }
  return true;
}

}  // namespace zproxy::sync
