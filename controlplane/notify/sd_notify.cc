#include "controlplane/notify/sd_notify.h"

#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "common/unique_fd.h"

namespace zproxy::notify {

SdNotify SdNotify::ForSocket(const std::string& name) {
  SdNotify n;
  n.name_ = name;
  // systemd accepts absolute paths and abstract names only.
  if (name.size() < 2 || name.size() >= sizeof(n.addr_.sun_path) ||
      (name[0] != '/' && name[0] != '@')) {
    n.note_ = "NOTIFY_SOCKET=\"" + name + "\" is neither an absolute path nor @abstract: ignored";
    return n;
  }
  n.addr_.sun_family = AF_UNIX;
  std::memcpy(n.addr_.sun_path, name.data(), name.size());
  if (name[0] == '@') n.addr_.sun_path[0] = '\0';  // abstract: no terminating NUL counted
  n.addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() +
                                       (name[0] == '/' ? 1 : 0));
  n.note_ = "systemd notification socket " + name;
  return n;
}

SdNotify SdNotify::FromEnvironment() {
  const char* socket_name = getenv("NOTIFY_SOCKET");
  SdNotify n = socket_name != nullptr ? ForSocket(socket_name) : SdNotify();
  const char* usec = getenv("WATCHDOG_USEC");
  const char* pid = getenv("WATCHDOG_PID");
  // WATCHDOG_PID names the process systemd watches; another one's (a wrapper's) is not ours.
  if (usec != nullptr && (pid == nullptr || std::atoll(pid) == getpid())) {
    const long long v = std::atoll(usec);
    if (v > 0) {
      n.watchdog_ = std::chrono::microseconds(v);
      n.note_ += std::string(n.note_.empty() ? "" : ", ") + "watchdog every " +
                 std::to_string(v / 1000) + " ms (pinged at half of it)";
    }
  }
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  return n;
}

bool SdNotify::Send(const std::string& state, std::string* error) const {
  if (!enabled()) return true;
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    *error = std::string("sd_notify: socket: ") + strerror(errno);
    return false;
  }
  ssize_t n = sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL,
                     reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
  if (n != static_cast<ssize_t>(state.size())) {
    *error = "sd_notify to " + name_ + ": " + (n < 0 ? strerror(errno) : "short write");
    return false;
  }
  return true;
}

}  // namespace zproxy::notify
