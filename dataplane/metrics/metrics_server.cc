#include "dataplane/metrics/metrics_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "common/net_address.h"

namespace zproxy::dataplane {

MetricsServer::~MetricsServer() { Stop(); }

bool MetricsServer::Bind(const std::string& address, std::string* error) {
  NetAddress addr;
  if (!ParseNetAddress(address, &addr, error)) {
    *error = "metrics_address \"" + address + "\": " + *error;
    return false;
  }
  listen_fd_ = socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  // During a graceful handover the old and the new data plane both serve /metrics for a
  // moment; the old one's socket closes when it exits.
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  // During a graceful handover the old and the new data plane serve /metrics side by side.
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(listen_fd_, addr.sa(), addr.len) != 0 || listen(listen_fd_, 64) != 0) {
    *error = "metrics_address " + address + ": " + strerror(errno);
    close(listen_fd_);
    listen_fd_ = -1;
    return false;
  }
  return true;
}

bool MetricsServer::Start(const std::string& address, Renderer render, std::string* error) {
  if (listen_fd_ < 0 && !Bind(address, error)) return false;
  render_ = std::move(render);
  thread_ = std::thread([this] { Serve(); });
  return true;
}

void MetricsServer::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
}

void MetricsServer::Serve() {
  while (!stop_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    HandleClient(fd);
    close(fd);
  }
}

void MetricsServer::HandleClient(int fd) {
  char req[4096];
  size_t len = 0;
  while (len < sizeof(req) - 1) {
    ssize_t n = recv(fd, req + len, sizeof(req) - 1 - len, 0);
    if (n <= 0) return;
    len += static_cast<size_t>(n);
    req[len] = 0;
    if (strstr(req, "\r\n\r\n") != nullptr || strstr(req, "\n\n") != nullptr) break;
  }
  std::string body;
  const char* status = "200 OK";
  const char* type = "text/plain; version=0.0.4; charset=utf-8";
  if (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0) {
    body = render_();
  } else {
    status = "404 Not Found";
    type = "text/plain";
    body = "only GET /metrics is served here\n";
  }
  std::string resp = std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
                     "\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nConnection: close\r\n\r\n" + body;
  size_t off = 0;
  while (off < resp.size()) {
    ssize_t n = send(fd, resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace zproxy::dataplane
