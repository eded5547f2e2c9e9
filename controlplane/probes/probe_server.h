// zproxyd's HTTP listener on metrics_address: GET /live, GET /ready (readiness.h) and
// GET /metrics (forwarded to the data plane's private metrics address). Not the data path:
// one thread per connection, at most `max_clients` at once, each with a deadline for its
// request and its response, so a slow or stuck client holds only its own thread and the
// others are still answered. Over the bound a client gets 503 at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "common/unique_fd.h"
#include "controlplane/probes/readiness.h"

namespace zproxy::probes {

class ProbeServer {
 public:
  struct Handlers {
    std::function<Readiness()> ready;
    // False (with a reason) when zproxyd's supervisor is stuck: /live says 503.
    std::function<bool(std::string* why)> live;
    // The Prometheus text, or false with a reason (503).
    std::function<bool(std::string* body, std::string* error)> metrics;
  };
  struct Options {
    size_t max_clients = 64;
    int deadline_ms = 5000;  // to receive the request head, and again to send the response
  };

  // Binds `address` ("host:port") and serves on a thread of its own. Null + *error when
  // the address cannot be bound.
  static std::unique_ptr<ProbeServer> Start(const std::string& address, Handlers handlers,
                                            Options options, std::string* error);
  ~ProbeServer() { Stop(); }
  ProbeServer(const ProbeServer&) = delete;
  ProbeServer& operator=(const ProbeServer&) = delete;

  // Stops accepting, cuts the connections still open and waits for their threads.
  void Stop();

 private:
  ProbeServer(UniqueFd listen_fd, UniqueFd wake_fd, Handlers handlers, Options options);
  void AcceptLoop();
  void ServeClient(int fd);
  std::string Respond(const std::string& method, const std::string& path);

  UniqueFd listen_fd_;
  UniqueFd wake_fd_;  // eventfd: Stop() wakes the accept loop
  const Handlers handlers_;
  const Options options_;
  std::thread accept_thread_;
  std::atomic<bool> stopped_{false};
  std::mutex mu_;
  std::condition_variable idle_;
  std::set<int> clients_;  // open client fds, under mu_ (their threads own them)
};

}  // namespace zproxy::probes
