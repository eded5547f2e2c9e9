// The data plane's end of the DataplaneSync stream (proto/zproxy/v1/dataplane_sync.proto).
// One thread dials zproxyd's unix socket, says Hello{pid, version}, applies every pushed
// snapshot through ConfigApplier and answers ACK/NACK; a second thread sends the /metrics
// text every stats interval. If zproxyd goes away the data plane keeps serving its last
// snapshot and redials with backoff (100 ms doubling to 500 ms: the bound on how long a
// restarted zproxyd waits to adopt it), saying Hello again.
// This header stays free of gRPC (links grpc++_unsecure: never OpenSSL next to BoringSSL).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "dataplane/config_applier.h"

namespace zproxy::dataplane {

class SyncClient {
 public:
  using Ms = std::chrono::milliseconds;
  struct Options {
    std::string address;  // "unix:/path" (DataplaneBootstrap.sync_address)
    pid_t pid = 0;
    std::function<std::string()> render_stats;  // the /metrics body
    // Adds what a new zproxyd needs to adopt this data plane to every Hello.
    std::function<void(zproxy::v1::Hello*)> fill_hello;
    Ms stats_interval{1000};
    Ms min_backoff{100};
    Ms max_backoff{500};
    uint32_t apply_timeout_ms = 2000;
  };

  // `applier` must outlive the client.
  SyncClient(Options options, ConfigApplier* applier);
  ~SyncClient();

  // Makes gRPC's event engine (its poller: an epoll fd, eventfds) and keeps it for the
  // client's life. Call before the workers serve: gRPC 1.51 builds it on the first channel
  // and aborts the process if that needs a descriptor and none is free ("No event engine
  // could be initialized", StatusOr::value() on "eventfd: Too many open files"), and it
  // builds it again after the last channel is gone. Upstream sockets can use up the
  // descriptor table; with the engine made beforehand, a dial only needs its socket, and
  // EMFILE there is an ordinary failed attempt (retried with backoff). Start() calls it
  // if it was not called.
  void Prepare();
  void Start();
  // Closes the stream and joins the threads. Idempotent.
  void Stop();

  // For tests and logs: is a stream to zproxyd open right now?
  bool connected() const { return connected_.load(); }

  struct Stream;  // one open Sync call (gRPC types, sync_client.cc)

 private:
  void Loop();
  // One connection: Hello, then snapshots until the stream ends. Returns true if the
  // stream was established (zproxyd answered), for the backoff.
  bool RunStream();
  void StatsLoop(Stream* stream);
  bool SleepUnlessStopped(Ms d);

  Options options_;
  ConfigApplier* applier_;
  std::thread thread_;
  std::atomic<bool> connected_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  Stream* stream_ = nullptr;  // under mu_, for Stop() to cancel
  // A gRPC channel that never connects (Prepare): it holds the event engine.
  std::shared_ptr<void> engine_anchor_;
};

}  // namespace zproxy::dataplane
