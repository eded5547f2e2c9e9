// HTTPS towards upstreams (clusters with tls): after the TCP connect the worker runs the
// client handshake through the same session and wire queue as TLS listeners (tls_side.cc),
// within the cluster's connect timeout, and attaches the waiting request once it completes.
// A refused certificate fails the attempt with a cause naming why (502, retried once on
// another endpoint like a connect failure).
#include <cstring>
#include <string>
#include <string_view>

#include "dataplane/tls/client_context.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

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

void Worker::TlsConnect(uint32_t conn_idx) {
  Conn& u = conns_.Get(conn_idx);
  const ClusterState& cs = Cs(u.owner);
  uint32_t t_idx = tls_conns_.Alloc();
  TlsConn& t = tls_conns_.Get(t_idx);
  t.blocks = &blocks_;
  t.context = cs.cfg->tls;
  char ip[64];
  HostOf(cs.cfg->endpoint_names[u.endpoint], ip, sizeof(ip));
  u.tls = t_idx;
  if (!t.session.StartClient(*cs.cfg->tls, &t, ip, cs.tls_sessions.Get(u.endpoint))) {
    TlsUpstreamFailed(conn_idx, ErrorCause::kUpstreamTlsHandshake);
    return;
  }
  // The connect timeout covers the handshake too.
  timers_.Arm(cs.t_connect, conn_idx, NowMs());
  if (t.session.Handshake() == Session::Result::kFailed) {
    TlsUpstreamRefused(conn_idx);
    return;
  }
  TlsFlush(conn_idx);  // the ClientHello
}

void Worker::TlsUpstreamReady(uint32_t conn_idx) {
  Conn& u = conns_.Get(conn_idx);
  timers_.Disarm(conn_idx);
  uint32_t ex_idx = u.exchange;
  if (ex_idx == kNil) {
    CloseConn(conn_idx);
    return;
  }
  u.exchange = kNil;  // AttachUpstream links both ways
  AttachUpstream(ex_idx, conn_idx);
}

void Worker::TlsUpstreamFailed(uint32_t conn_idx, ErrorCause cause) {
  Conn& u = conns_.Get(conn_idx);
  if (u.flags & kClosing) return;
  if (u.exchange == kNil) {
    CloseConn(conn_idx);
    return;
  }
  // Nothing of the request was sent: another endpoint may still answer (UpstreamFailed
  // retries once); the client gets a 502 naming the cause otherwise.
  UpstreamFailed(u.exchange, cause, true);
}

void Worker::TlsUpstreamKeepSession(uint32_t conn_idx) {
  Conn& u = conns_.Get(conn_idx);
  if (ssl_session_st* s = tls_conns_.Get(u.tls).session.TakeNewSession()) {
    Cs(u.owner).tls_sessions.Put(u.endpoint, s);
  }
}

void Worker::TlsUpstreamRefused(uint32_t conn_idx) {
  Conn& u = conns_.Get(conn_idx);
  TlsUpstreamFailed(conn_idx, CauseOf(tls_conns_.Get(u.tls).session.upstream_failure()));
}

}  // namespace zproxy::dataplane
