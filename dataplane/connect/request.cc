// HTTP CONNECT on HTTP listeners (forward proxy to an allowlist, Listener.connect).
// An IP-literal target must match one of the listener's IP patterns (a host name goes
// through by_name.cc first, then comes back here to connect); the upstream
// connection belongs to the listener's connect state (a cluster without endpoints), so
// connect timeouts and errors (502/504) take the same path as routed requests. Once the
// target accepts, the client gets 200 and the exchange becomes the same tunnel a
// WebSocket 101 starts (dataplane/tunnel/upgraded.cc); bytes the client sent behind the
// CONNECT head wait in its input queue and go first.
#include <algorithm>
#include <cstring>

#include "dataplane/connect/connect_requests.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

namespace {
constexpr std::string_view kEstablished = "HTTP/1.1 200 Connection Established\r\n\r\n";
}  // namespace

void ConnectRequests::RefuseConnect(uint32_t conn_idx, ConnectOutcome outcome, int status,
                                    std::string_view body, bool close,
                                    std::string_view request_line) {
  w_.stats_.connect_requests[static_cast<int>(outcome)].Add();
  w_.SendLocalResponse(conn_idx, status, body, close, request_line, ConnectOutcomeName(outcome));
}

void ConnectRequests::StartConnectRequest(uint32_t conn_idx,
                                          const codec::http1::RequestHeadEvent& req,
                                          std::string_view request_line) {
  Conn& c = w_.conns_.Get(conn_idx);
  const ListenerRuntime& listener = w_.snap_->listeners[c.owner];
  // A refused CONNECT without a body leaves the connection usable, as after a 404.
  bool close = req.head.body.present() || !req.keep_alive || w_.draining_;
  auto refuse = [&](ConnectOutcome outcome, int status, std::string_view body, bool force_close) {
    size_t head_bytes = req.consumed;
    bool cl = close || force_close;
    RefuseConnect(conn_idx, outcome, status, body, cl, request_line);
    if (!cl) {
      w_.ConsumeIn(conn_idx, head_bytes);
      w_.timers_.Arm(w_.t_client_idle_[w_.conns_.Get(conn_idx).owner], conn_idx, w_.NowMs());
    }
  };
  if (listener.connect == nullptr) {
    // 403 as Squid answers a denied CONNECT (a 405 would owe an Allow field).
    refuse(ConnectOutcome::kNotEnabled, 403, "zproxy: CONNECT is not enabled on this listener\n",
           false);
    return;
  }
  NetAddress target;
  ConnectName name;
  ConnectTargetError parsed = ParseConnectTarget(req.head.target, &target, &name);
  if (parsed == ConnectTargetError::kMalformed) {
    refuse(ConnectOutcome::kBadTarget, 400,
           "zproxy: bad CONNECT target (expected host:port, IP:port or [IPv6]:port)\n", true);
    return;
  }
  if (req.head.body.present()) {
    // A CONNECT has no content (RFC 9110 9.3.6); framing would make the tunnel ambiguous.
    refuse(ConnectOutcome::kBadTarget, 400, "zproxy: CONNECT with a body\n", true);
    return;
  }
  if (parsed == ConnectTargetError::kHostname) {
    const auto& rules = listener.connect->allow;
    if (!ConnectNameAllowed(rules, name) && !ConnectIpRulesForPort(rules, name.port)) {
      // No name pattern and no IP pattern for this port: denied without a lookup.
      refuse(ConnectOutcome::kDenied, 403, "zproxy: CONNECT target not allowed\n", false);
      return;
    }
    StartConnectByName(conn_idx, req, request_line, name);
    return;
  }
  if (!ConnectAllowed(listener.connect->allow, target)) {
    refuse(ConnectOutcome::kDenied, 403, "zproxy: CONNECT target not allowed\n", false);
    return;
  }
  uint32_t ex_idx = NewConnectExchange(conn_idx, req, request_line);
  w_.ConnectTo(ex_idx, 0, target);  // endpoint 0: the connect state's single (unused) pool
}

bool ConnectRequests::StartH2Connect(uint32_t ex_idx, std::string_view target_text, int* status,
                                     std::string_view* body, std::string_view* note) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  const ListenerRuntime& listener = w_.snap_->listeners[w_.conns_.Get(ex.client).owner];
  auto refuse = [&](ConnectOutcome outcome, int s, std::string_view b) {
    w_.stats_.connect_requests[static_cast<int>(outcome)].Add();
    *status = s;
    *body = b;
    *note = ConnectOutcomeName(outcome);
    return false;
  };
  if (listener.connect == nullptr) {
    return refuse(ConnectOutcome::kNotEnabled, 403,
                  "zproxy: CONNECT is not enabled on this listener\n");
  }
  NetAddress target;
  ConnectName name;
  ConnectTargetError parsed = ParseConnectTarget(target_text, &target, &name);
  if (parsed == ConnectTargetError::kMalformed) {
    return refuse(ConnectOutcome::kBadTarget, 400,
                  "zproxy: bad CONNECT target (expected host:port, IP:port or [IPv6]:port)\n");
  }
  const auto& rules = listener.connect->allow;
  if (parsed == ConnectTargetError::kHostname) {
    if (!ConnectNameAllowed(rules, name) && !ConnectIpRulesForPort(rules, name.port)) {
      return refuse(ConnectOutcome::kDenied, 403, "zproxy: CONNECT target not allowed\n");
    }
    MakeConnectExchange(ex_idx);
    ResolveAndConnect(ex_idx, name);
    return true;
  }
  if (!ConnectAllowed(rules, target)) {
    return refuse(ConnectOutcome::kDenied, 403, "zproxy: CONNECT target not allowed\n");
  }
  MakeConnectExchange(ex_idx);
  w_.ConnectTo(ex_idx, 0, target);
  return true;
}

void ConnectRequests::MakeConnectExchange(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ex.cluster = w_.clusters_.ForConnect(w_.conns_.Get(ex.client).owner);
  w_.RefCluster(ex.cluster);
  ex.connect = true;
  ex.req_done = true;  // nothing to forward until the tunnel is up
}

uint32_t ConnectRequests::NewConnectExchange(uint32_t conn_idx,
                                             const codec::http1::RequestHeadEvent& req,
                                             std::string_view request_line) {
  Conn& c = w_.conns_.Get(conn_idx);
  uint32_t ex_idx = w_.exchanges_.Alloc();
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ex.client = conn_idx;
  MakeConnectExchange(ex_idx);
  ex.down.Begin(req);
  if (w_.access_log_.enabled()) {
    size_t n = std::min(request_line.size(), sizeof(ex.req_line));
    memcpy(ex.req_line, request_line.data(), n);
    ex.req_line_len = static_cast<uint8_t>(n);
    ex.start_us = w_.NowUs();
  }
  c.exchange = ex_idx;
  w_.stats_.client_idle.Sub();
  w_.ConsumeIn(conn_idx, req.consumed);
  return ex_idx;
}

void ConnectRequests::FailConnect(uint32_t ex_idx, ConnectOutcome outcome, int status,
                                  std::string_view body, std::string_view note) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  w_.stats_.connect_requests[static_cast<int>(outcome)].Add();
  if (ex.h2_stream != 0) {
    w_.h2_.LocalResponse(ex_idx, status, body, note);  // the stream, not the connection
    return;
  }
  // A client that sent its FIN behind the CONNECT reads this answer, then the close.
  bool close = !ex.down.keep_alive() || ex.tunnel.client_eof || w_.draining_;
  uint32_t client = ex.client;
  if (w_.access_log_.enabled()) {
    char tmp[768];
    ex.resp_bytes = codec::http1::EncodeLocalResponse(status, body, close, tmp, sizeof(tmp));
    w_.LogExchange(ex, status, note);
  }
  w_.AbortExchange(ex_idx, false);
  w_.timers_.Disarm(client);
  w_.SendLocalResponse(client, status, body, close);
  if (!close) {
    Conn& c = w_.conns_.Get(client);
    w_.timers_.Arm(w_.t_client_idle_[c.owner], client, w_.NowMs());
    if (w_.InBytes(client) > 0) w_.ProcessClientInput(client);
  }
}

void ConnectRequests::EstablishConnectTunnel(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  w_.stats_.connect_requests[static_cast<int>(ConnectOutcome::kEstablished)].Add();
  if (ex.h2_stream != 0) {
    w_.h2_.EstablishTunnel(ex_idx);  // 200 on the stream; DATA both ways from here
    return;
  }
  w_.QueueOut(ex.client, kEstablished.data(), static_cast<uint32_t>(kEstablished.size()),
              ItemOwner::kStatic, 0);
  w_.stats_.CountStatus(200);
  ex.head_queued = true;
  ex.status = 200;
  ex.resp_bytes += kEstablished.size();
  w_.LogExchange(ex, 200, "connect");
  ex.resp_started = true;
  ex.resp = RespState::kDone;
  ex.tunnel.active = true;
  w_.tunnels_.StartUpgraded(ex_idx);
}

void ConnectRequests::CountConnectFailure(ErrorCause cause) {
  ConnectOutcome o = cause == ErrorCause::kConnectRefused   ? ConnectOutcome::kRefused
                     : cause == ErrorCause::kConnectTimeout ? ConnectOutcome::kTimeout
                                                            : ConnectOutcome::kError;
  w_.stats_.connect_requests[static_cast<int>(o)].Add();
}

}  // namespace zproxy::dataplane
