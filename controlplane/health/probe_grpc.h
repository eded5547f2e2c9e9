// gRPC health probes: one grpc.health.v1.Health/Check call per probe, for clusters with
// `protocol: http2` and `health_check.grpc_service`. Healthy iff the answer is SERVING.
//
// gRPC owns its sockets and threads, so this probe cannot be a state machine on a socket
// like probe.cc's: the call runs on grpc++'s callback API and, when it completes, makes an
// eventfd readable. The checker's epoll loop watches that eventfd like any probe socket, so
// its timeouts, thresholds and events stay exactly as for TCP and HTTP checks.
//
// Each probe uses a fresh channel (its own subchannel pool): a check asks "does a new
// connection get SERVING now", as the HTTP check's fresh connection does, and never waits
// behind the reconnect backoff of a channel that failed earlier.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/net_address.h"
#include "common/unique_fd.h"
#include "controlplane/health/probe_tls.h"

namespace grpc {
class ChannelCredentials;
}

namespace zproxy::health {

// How a cluster's gRPC checks connect: insecure (h2c) or TLS with the cluster's CA, client
// certificate, SNI and verify setting. One per cluster, shared by its probes.
class GrpcProbeChannel {
 public:
  GrpcProbeChannel();
  ~GrpcProbeChannel();
  GrpcProbeChannel(const GrpcProbeChannel&) = delete;
  GrpcProbeChannel& operator=(const GrpcProbeChannel&) = delete;

  static std::shared_ptr<const GrpcProbeChannel> Insecure();
  // Null with *error naming what failed ("ca: cannot read ..."). min_tls13 is not applied:
  // grpc++ 1.51 has no minimum-version option (the data plane still enforces it).
  static std::shared_ptr<const GrpcProbeChannel> Tls(const ProbeTlsSettings& settings,
                                                     std::string* error);

  const std::shared_ptr<grpc::ChannelCredentials>& credentials() const { return creds_; }
  const std::string& sni() const { return sni_; }  // empty: the endpoint's address is checked
  // Equal keys: the same checks (see ProbeTlsContext::key).
  const std::string& key() const { return key_; }

 private:
  std::shared_ptr<grpc::ChannelCredentials> creds_;
  std::string sni_;
  std::string key_;
};

class GrpcProbe {
 public:
  GrpcProbe();
  ~GrpcProbe();
  GrpcProbe(const GrpcProbe&) = delete;
  GrpcProbe& operator=(const GrpcProbe&) = delete;

  // Starts Check(service) on `address`, with `authority` as :authority. False with *error
  // when it could not start (no eventfd).
  bool Start(const NetAddress& address, const std::string& authority, const std::string& service,
             const GrpcProbeChannel& channel, std::string* error);
  // Readable once the call has completed; -1 when no call runs.
  int fd() const { return fd_.get(); }
  // After fd() became readable: true when the call completed (then *ok and *reason hold the
  // verdict), false if it has not yet (a spurious wake-up).
  bool Result(bool* ok, std::string* reason);
  // Cancels a running call and closes the eventfd (the call finishes on its own later).
  void Reset();

 private:
  struct Call;
  // Frees the abandoned calls that have completed.
  void Reap();

  // Calls (with their channels) are only ever freed on the thread that owns the probe, and
  // only once grpc has completed them: freeing a channel on grpc's own callback thread
  // aborts grpc 1.51 (a completion queue's refcount underflows), so the callback holds no
  // reference. A call given up on (timeout, config change) waits in abandoned_ until its
  // cancellation completes.
  std::unique_ptr<Call> call_;
  std::vector<std::unique_ptr<Call>> abandoned_;
  UniqueFd fd_;
};

}  // namespace zproxy::health
