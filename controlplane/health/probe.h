// One health probe on one nonblocking socket: a TCP connect, optionally followed by an
// HTTP/1.1 GET whose status line decides; over TLS (probe_tls.h) when the cluster has `tls:`.
// Or a gRPC health check (probe_grpc.h), whose "socket" is an eventfd gRPC pokes when done.
// Driven by the checker's epoll loop: Start() opens the socket and says which events it waits for,
// OnEvents() advances it. The probe never blocks and owns nothing but its socket.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/net_address.h"
#include "common/unique_fd.h"
#include "controlplane/health/probe_grpc.h"
#include "controlplane/health/probe_tls.h"

namespace zproxy::health {

struct ProbeSpec {
  std::string http_path;  // empty = TCP connect check
  std::string host;       // Host header (the SNI, else the endpoint address as configured)
  // Healthy statuses for HTTP checks; empty = 200..399.
  std::vector<uint32_t> expected_statuses;
  // HTTP checks of a cluster with `tls:`: the GET goes over TLS with the cluster's settings.
  std::shared_ptr<const ProbeTlsContext> tls;
  std::string tls_error;  // the cluster's TLS settings could not be loaded: every probe fails
  // gRPC check (grpc_channel set): grpc.health.v1.Health/Check of grpc_service, with
  // `host` as :authority; http_path and expected_statuses are unused.
  std::shared_ptr<const GrpcProbeChannel> grpc_channel;
  std::string grpc_service;
};

// "HTTP/1.x NNN ..." -> NNN, or -1 if `line` is not a status line. Needs the 3 digits and
// the space (or end) after them.
int ParseStatusLine(std::string_view line);
bool StatusExpected(int status, const std::vector<uint32_t>& expected);

class Probe {
 public:
  enum class State { kIdle, kConnecting, kHandshaking, kSending, kReading, kGrpcCall, kDone };

  // Starts connecting. Returns true while the probe runs: fd() is to be watched for
  // wanted_events(). False when it finished at once (ok()/reason() tell how; e.g. a socket
  // error, or a connect that completed synchronously for a TCP check).
  bool Start(const NetAddress& address, const ProbeSpec& spec);
  // Advances on readiness. Returns true when the probe has finished (see ok()/reason()).
  bool OnEvents(uint32_t epoll_events);
  // Ends a running probe as failed with `reason` (timeout, shutdown).
  void Fail(std::string reason);

  State state() const { return state_; }
  bool running() const { return state_ != State::kIdle && state_ != State::kDone; }
  int fd() const { return state_ == State::kGrpcCall ? grpc_.fd() : fd_.get(); }
  uint32_t wanted_events() const;
  bool ok() const { return ok_; }
  Probe() = default;
  ~Probe();
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;
  const std::string& reason() const { return reason_; }
  // Closes the socket and returns to kIdle (results stay readable until the next Start).
  void Reset();

 private:
  bool Finish(bool ok, std::string reason);
  bool OnConnected();
  bool Handshake();
  bool SendSome();
  bool ReadSome();
  void FreeSsl();
  // TLS: the events the last SSL call asked for (it may want to write while reading).
  bool WouldBlock(int ret);

  ssl_st* ssl_ = nullptr;  // owned; null for plaintext checks
  uint32_t tls_want_ = 0;
  std::string ip_;  // the endpoint's IP, for the certificate check when there is no SNI

  State state_ = State::kIdle;
  UniqueFd fd_;
  GrpcProbe grpc_;
  const ProbeSpec* spec_ = nullptr;
  std::string request_;
  size_t sent_ = 0;
  std::string response_;
  bool ok_ = false;
  std::string reason_;
};

}  // namespace zproxy::health
