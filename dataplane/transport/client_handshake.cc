// HTTPS towards upstreams (clusters with tls): after the TCP connect the client handshake
// runs through the same session and wire queue as TLS listeners (records.cc), within the
// cluster's connect timeout, and the waiting request is attached once it completes. A
// refused certificate fails the attempt with a cause naming why (502, retried once on
// another endpoint like a connect failure). Sessions the upstream issues are kept per
// endpoint, so the next connection to it resumes.
#include <cstring>
#include <string>
#include <string_view>

#include "dataplane/tls/client_context.h"
#include "dataplane/transport/tls_layer.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane::transport {

using tls::Session;

namespace {
// "10.0.0.5" from "10.0.0.5:443", "::1" from "[::1]:443" (for certificate checks by address).
void HostOf(const std::string& endpoint, char* out, size_t cap) {
  std::string_view host(endpoint);
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos) host = host.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  size_t n = std::min(host.size(), cap - 1);
  memcpy(out, host.data(), n);
  out[n] = '\0';
}

ErrorCause CauseOf(tls::UpstreamTlsFailure f) {
  switch (f) {
    case tls::UpstreamTlsFailure::kExpired:
      return ErrorCause::kUpstreamTlsExpired;
    case tls::UpstreamTlsFailure::kUntrusted:
      return ErrorCause::kUpstreamTlsUntrusted;
    case tls::UpstreamTlsFailure::kName:
      return ErrorCause::kUpstreamTlsName;
    case tls::UpstreamTlsFailure::kHandshake:
      break;
  }
  return ErrorCause::kUpstreamTlsHandshake;
}
}  // namespace

void TlsLayer::Connect(uint32_t conn_idx) {
  Conn& u = conns_.Get(conn_idx);
  const ClusterState& cs = w_.Cs(u.owner);
  TlsConn& t = Attach(u, cs.cfg->tls);
  char ip[64];
  HostOf(cs.cfg->endpoint_names[u.endpoint], ip, sizeof(ip));
  if (!t.session.StartClient(*cs.cfg->tls, &t, ip, cs.tls_sessions.Get(u.endpoint))) {
    UpstreamFailed(conn_idx, ErrorCause::kUpstreamTlsHandshake);
    return;
  }
  // The connect timeout covers the handshake too.
  w_.timers_.Arm(cs.t_connect, conn_idx, w_.NowMs());
  if (t.session.Handshake() == Session::Result::kFailed) {
    UpstreamRefused(conn_idx);
    return;
  }
  EncryptAndSend(conn_idx);  // the ClientHello
}

void TlsLayer::UpstreamReady(uint32_t conn_idx) {
  Conn& u = conns_.Get(conn_idx);
  Of(u).app_protocol = AppProtocolOf(Of(u).session.alpn());
  w_.timers_.Disarm(conn_idx);
  if (u.up_h2 != 0) {
    // HTTP/2 over TLS: only if the endpoint chose h2 (it may not speak it at all).
    if (Of(u).app_protocol != AppProtocol::kHttp2) {
      w_.h2up_.FailConnect(conn_idx, ErrorCause::kUpstreamTlsHandshake);
      return;
    }
    w_.h2up_.OnConnected(conn_idx, 0);
    return;
  }
  uint32_t ex_idx = u.exchange;
  if (ex_idx == kNil) {
    w_.CloseConn(conn_idx);
    return;
  }
  u.exchange = kNil;  // AttachUpstream links both ways
  w_.AttachUpstream(ex_idx, conn_idx);
}

void TlsLayer::UpstreamFailed(uint32_t conn_idx, ErrorCause cause) {
  Conn& u = conns_.Get(conn_idx);
  if (u.flags & kClosing) return;
  if (u.up_h2 != 0) {
    w_.h2up_.FailConnect(conn_idx, cause);  // its waiting streams go elsewhere or answer
    return;
  }
  if (u.exchange == kNil) {
    w_.CloseConn(conn_idx);
    return;
  }
  // Nothing of the request was sent: another endpoint may still answer (UpstreamFailed
  // retries once); the client gets a 502 naming the cause otherwise.
  w_.UpstreamFailed(u.exchange, cause, true);
}

void TlsLayer::UpstreamKeepSession(uint32_t conn_idx) {
  Conn& u = conns_.Get(conn_idx);
  if (ssl_session_st* s = Of(u).session.TakeNewSession()) {
    w_.Cs(u.owner).tls_sessions.Put(u.endpoint, s);
  }
}

void TlsLayer::UpstreamRefused(uint32_t conn_idx) {
  Conn& u = conns_.Get(conn_idx);
  UpstreamFailed(conn_idx, CauseOf(Of(u).session.upstream_failure()));
}

}  // namespace zproxy::dataplane::transport
