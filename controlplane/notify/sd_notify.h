// systemd's service notification protocol, implemented here rather than through
// libsystemd (one datagram per message; nothing else of systemd is needed): a message is
// "KEY=VALUE" lines sent to the AF_UNIX datagram socket named by $NOTIFY_SOCKET, a path or,
// with a leading '@', an abstract name. Without $NOTIFY_SOCKET every call is a no-op.
#pragma once

#include <sys/socket.h>
#include <sys/un.h>

#include <chrono>
#include <string>

namespace zproxy::notify {

class SdNotify {
 public:
  // Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, then unsets them so the data
  // plane (a child) does not inherit them: systemd expects messages from zproxyd only.
  // setenv/unsetenv are not thread-safe: call before any thread exists.
  static SdNotify FromEnvironment();
  // For tests: `socket_name` as $NOTIFY_SOCKET would be, no watchdog.
  static SdNotify ForSocket(const std::string& socket_name);

  bool enabled() const { return addr_len_ > 0; }
  // systemd's WatchdogSec for this process (0 = none); ping at half of it.
  std::chrono::microseconds watchdog() const { return watchdog_; }
  // A note on what was found in the environment (for the start-up log), "" if nothing.
  const std::string& note() const { return note_; }

  // Sends `state` ("READY=1", "STOPPING=1", ...) as one datagram. True if sent or if
  // notification is off; false with *error naming the socket otherwise.
  bool Send(const std::string& state, std::string* error) const;

 private:
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
  std::string name_;
  std::chrono::microseconds watchdog_{0};
  std::string note_;
};

}  // namespace zproxy::notify
