#include "controlplane/probes/probe_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/log.h"
#include "common/net_address.h"

namespace zproxy::probes {
namespace {

using Clock = std::chrono::steady_clock;

std::string HttpResponse(const char* status, const std::string& body, bool head_only = false,
                         const char* type = "text/plain; charset=utf-8") {
  std::string r = std::string("HTTP/1.1 ") + status + "\r\nContent-Type: " + type +
                  "\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\nConnection: close\r\n\r\n";
  if (!head_only) r += body;
  return r;
}

int MsLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Reads until the end of the request head; false on EOF, error, overflow or deadline.
bool ReadHead(int fd, Clock::time_point deadline, std::string* head) {
  char buf[2048];
  while (head->find("\r\n\r\n") == std::string::npos && head->find("\n\n") == std::string::npos) {
    if (head->size() > 16384) return false;
    pollfd p{fd, POLLIN, 0};
    const int left = MsLeft(deadline);
    if (left == 0 || poll(&p, 1, left) <= 0) return false;
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) return false;
    head->append(buf, static_cast<size_t>(n));
  }
  return true;
}

// Writes all of `data` before the deadline; a client that does not read is cut.
void WriteAll(int fd, const std::string& data, Clock::time_point deadline) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return;
    pollfd p{fd, POLLOUT, 0};
    const int left = MsLeft(deadline);
    if (left == 0 || poll(&p, 1, left) <= 0) return;
  }
}

}  // namespace

std::unique_ptr<ProbeServer> ProbeServer::Start(const std::string& address, Handlers handlers,
                                                Options options, std::string* error) {
  NetAddress addr;
  if (!ParseNetAddress(address, &addr, error)) {
    *error = "metrics_address \"" + address + "\": " + *error;
    return nullptr;
  }
  UniqueFd fd(socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  // With a wildcard metrics_address (0.0.0.0:P) the data plane's private 127.a.b.c:P
  // (state/dataplane_metrics.h) can only bind beside it if both sockets allow reuse.
  setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  if (bind(fd.get(), addr.sa(), addr.len) != 0 || listen(fd.get(), 128) != 0) {
    *error = "metrics_address " + address + ": " + strerror(errno);
    return nullptr;
  }
  UniqueFd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) {
    *error = std::string("metrics server: eventfd: ") + strerror(errno);
    return nullptr;
  }
  std::unique_ptr<ProbeServer> s(
      new ProbeServer(std::move(fd), std::move(wake), std::move(handlers), options));
  s->accept_thread_ = std::thread([p = s.get()] { p->AcceptLoop(); });
  return s;
}

ProbeServer::ProbeServer(UniqueFd listen_fd, UniqueFd wake_fd, Handlers handlers, Options options)
    : listen_fd_(std::move(listen_fd)),
      wake_fd_(std::move(wake_fd)),
      handlers_(std::move(handlers)),
      options_(options) {}

void ProbeServer::Stop() {
  if (stopped_.exchange(true)) return;
  uint64_t one = 1;
  if (write(wake_fd_.get(), &one, sizeof(one)) != sizeof(one)) {
    ZLOG_WARN("metrics server: cannot wake the accept thread: %s", strerror(errno));
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  listen_fd_.reset();
  std::unique_lock<std::mutex> lock(mu_);
  for (int fd : clients_) shutdown(fd, SHUT_RDWR);  // their threads see EOF and finish
  idle_.wait(lock, [this] { return clients_.empty(); });
}

void ProbeServer::AcceptLoop() {
  pthread_setname_np(pthread_self(), "zp-probes");
  while (!stopped_.load()) {
    pollfd p[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      ZLOG_ERROR("metrics server: poll: %s; /metrics, /ready and /live stop answering",
                 strerror(errno));
      return;
    }
    if (p[1].revents != 0) return;
    int fd = accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors or a client gone before accept: back off a little, never spin.
      if (errno != EAGAIN && errno != ECONNABORTED && errno != EINTR) usleep(10000);
      continue;
    }
    std::unique_lock<std::mutex> lock(mu_);
    if (clients_.size() >= options_.max_clients) {
      lock.unlock();
      const std::string busy =
          HttpResponse("503 Service Unavailable", "too many clients on the metrics port; retry\n");
      send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    clients_.insert(fd);
    lock.unlock();
    std::thread([this, fd] { ServeClient(fd); }).detach();
  }
}

void ProbeServer::ServeClient(int fd) {
  std::string head;
  if (ReadHead(fd, Clock::now() + std::chrono::milliseconds(options_.deadline_ms), &head)) {
    const size_t line_end = head.find_first_of("\r\n");
    const std::string line = head.substr(0, line_end);
    const size_t sp1 = line.find(' ');
    const size_t sp2 = line.find(' ', sp1 == std::string::npos ? 0 : sp1 + 1);
    std::string response;
    if (sp1 == std::string::npos || sp2 == std::string::npos) {
      response = HttpResponse("400 Bad Request", "malformed request line\n");
    } else {
      const std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      response = Respond(line.substr(0, sp1), target.substr(0, target.find('?')));
    }
    WriteAll(fd, response, Clock::now() + std::chrono::milliseconds(options_.deadline_ms));
  }
  // Under the lock: Stop() may be shutting it down right now.
  std::lock_guard<std::mutex> lock(mu_);
  close(fd);
  clients_.erase(fd);
  if (clients_.empty()) idle_.notify_all();
}

std::string ProbeServer::Respond(const std::string& method, const std::string& path) {
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    return HttpResponse("405 Method Not Allowed", "only GET and HEAD are served here\n");
  }
  if (path == "/live") {
    std::string why;
    if (handlers_.live && !handlers_.live(&why)) {
      return HttpResponse("503 Service Unavailable", "not live: " + why + "\n", head);
    }
    return HttpResponse("200 OK", "live\n", head);
  }
  if (path == "/ready") {
    Readiness r = handlers_.ready();
    return r.ready ? HttpResponse("200 OK", "ready: " + r.reason + "\n", head)
                   : HttpResponse("503 Service Unavailable", "not ready: " + r.reason + "\n", head);
  }
  if (path == "/metrics") {
    std::string body, error;
    if (!handlers_.metrics(&body, &error)) {
      return HttpResponse("503 Service Unavailable", "metrics unavailable: " + error + "\n", head);
    }
    return HttpResponse("200 OK", body, head, "text/plain; version=0.0.4; charset=utf-8");
  }
  return HttpResponse("404 Not Found", "served here: /metrics, /ready, /live\n", head);
}

}  // namespace zproxy::probes
