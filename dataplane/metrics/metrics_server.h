// GET /metrics on its own small thread, off the workers' event loops: scrapes are
// rare and must never add latency to proxied traffic.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace zproxy::dataplane {

class MetricsServer {
 public:
  using Renderer = std::function<std::string()>;

  ~MetricsServer();
  // Binds `address` ("host:port") without serving yet: done before the privilege drop, so
  // a port below 1024 works too. Returns false with *error on failure.
  bool Bind(const std::string& address, std::string* error);
  // Serves the bound socket on its own thread (binds first if Bind was not called).
  bool Start(const std::string& address, Renderer render, std::string* error);
  void Stop();

 private:
  void Serve();
  void HandleClient(int fd);

  int listen_fd_ = -1;
  Renderer render_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace zproxy::dataplane
