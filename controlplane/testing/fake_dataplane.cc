// Test-only stand-in for zproxy-dataplane: receives the bootstrap like the real one, then
// answers every connection on every listen socket with a fixed HTTP 200 naming its pid.
// Exists only to test zproxyd's handoff and supervision.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/handoff/handoff.h"
#include "common/log.h"

int main(int argc, char** argv) {
  zproxy::SetLogComponent("fake-dataplane");
  int control = -1;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--control-fd") == 0) control = std::atoi(argv[i + 1]);
  }
  if (control < 0) {
    ZLOG_ERROR("usage: fake_dataplane --control-fd N");
    return 2;
  }
  zproxy::v1::DataplaneBootstrap bootstrap;
  std::vector<zproxy::UniqueFd> fds;
  std::string error;
  if (!zproxy::handoff::ReceiveBootstrap(control, &bootstrap, &fds, &error, 10000)) {
    ZLOG_ERROR("bootstrap: %s", error.c_str());
    return 1;
  }
  ZLOG_INFO("bootstrap: config version %llu, %u workers, %zu sockets",
            static_cast<unsigned long long>(bootstrap.config_version()), bootstrap.workers(),
            fds.size());

  const std::string body = "fake-dataplane pid=" + std::to_string(getpid()) + "\n";
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                               "\r\nConnection: close\r\n\r\n" + body;
  std::vector<pollfd> polls;
  polls.push_back({control, POLLIN, 0});  // EOF here = zproxyd is gone
  for (const auto& fd : fds) polls.push_back({fd.get(), POLLIN, 0});
  for (;;) {
    if (poll(polls.data(), polls.size(), -1) < 0) continue;
    if (polls[0].revents != 0) {
      ZLOG_INFO("control socket closed; exiting");
      return 0;
    }
    for (size_t i = 1; i < polls.size(); ++i) {
      if (!(polls[i].revents & POLLIN)) continue;
      int c;
      while ((c = accept4(polls[i].fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0) {
        char buf[4096];
        std::string req;
        while (req.find("\r\n\r\n") == std::string::npos) {
          ssize_t n = read(c, buf, sizeof(buf));
          if (n <= 0) break;
          req.append(buf, static_cast<size_t>(n));
        }
        ssize_t ignored = write(c, response.data(), response.size());
        (void)ignored;
        close(c);
      }
    }
  }
}
