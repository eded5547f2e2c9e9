// Real loopback peers for the health tests: a listener that never accepts (the kernel
// still completes handshakes into its backlog), an HTTP responder with a settable status,
// and a port with nothing listening.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "common/unique_fd.h"

namespace zproxy::health::testing {

inline UniqueFd BindLoopback(uint16_t* port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// Connections complete (backlog) but nobody ever reads or answers.
class SilentListener {
 public:
  SilentListener() {
    fd_ = BindLoopback(&port_);
    listen(fd_.get(), 128);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  UniqueFd fd_;
  uint16_t port_ = 0;
};

// A port nothing listens on: connects are refused.
inline std::string ClosedAddress() {
  uint16_t port = 0;
  UniqueFd fd = BindLoopback(&port);  // closed on return, without ever listening
  return "127.0.0.1:" + std::to_string(port);
}

// Answers every request head with `status` and closes.
class HttpResponder {
 public:
  explicit HttpResponder(int status) : status_(status) {
    fd_ = BindLoopback(&port_);
    listen(fd_.get(), 128);
    thread_ = std::thread([this] { Run(); });
  }
  ~HttpResponder() {
    stop_ = true;
    thread_.join();
  }
  void set_status(int s) { status_ = s; }
  int requests() const { return requests_; }
  std::string last_request() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      UniqueFd c(accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c.valid()) continue;
      std::string req;
      char buf[1024];
      while (req.find("\r\n\r\n") == std::string::npos) {
        pollfd q{c.get(), POLLIN, 0};
        if (poll(&q, 1, 1000) <= 0) break;
        ssize_t n = read(c.get(), buf, sizeof(buf));
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_ = req;
      }
      ++requests_;
      std::string resp = "HTTP/1.1 " + std::to_string(status_.load()) +
                         " X\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
      (void)!write(c.get(), resp.data(), resp.size());
    }
  }

  UniqueFd fd_;
  uint16_t port_ = 0;
  std::atomic<int> status_;
  std::atomic<int> requests_{0};
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::string last_;
  std::thread thread_;
};

}  // namespace zproxy::health::testing
