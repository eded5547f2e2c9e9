// The TLS layer's per-connection state and the slow paths of the byte layer's hooks.
#include "dataplane/transport/tls_layer.h"

#include <cerrno>
#include <cstdio>

#include "dataplane/worker/worker.h"

namespace zproxy::dataplane::transport {

TlsConn& TlsLayer::Attach(Conn& c, std::shared_ptr<const void> context) {
  uint32_t t_idx = tls_.Alloc();
  TlsConn& t = tls_.Get(t_idx);
  t.blocks = &w_.blocks_;
  t.context = std::move(context);
  c.tls = t_idx;
  return t;
}

void TlsLayer::Release(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.tls == kNil) return;
  TlsConn& t = tls_.Get(c.tls);
  t.FreeWire();
  t.Reset();
  tls_.Free(c.tls);
  c.tls = kNil;
}

std::string_view TlsLayer::LogField(const Conn& c, char* buf, size_t cap) const {
  if (c.tls == kNil) return {};
  const TlsConn& t = tls_.Get(c.tls);
  int n = snprintf(buf, cap, "%s/%s", t.version, t.cipher);
  return std::string_view(buf, n < 0 ? 0 : std::min<size_t>(static_cast<size_t>(n), cap - 1));
}

std::string_view TlsLayer::Version(const Conn& c) const {
  return c.tls == kNil ? std::string_view() : std::string_view(tls_.Get(c.tls).version);
}

std::string_view TlsLayer::ServerName(const Conn& c) const {
  if (c.tls == kNil) return {};
  const TlsConn& t = tls_.Get(c.tls);
  return std::string_view(t.sni, t.sni_len);
}

bool TlsLayer::OnRecvError(uint32_t conn_idx, int res, bool recv_ended) {
  const Conn& c = conns_.Get(conn_idx);
  if (res != -EIO || c.tls == kNil || Userspace(conn_idx)) return false;
  ControlRecord(conn_idx, recv_ended);  // kTLS: an alert or handshake record is next
  return true;
}

bool TlsLayer::OnEofInHandshake(uint32_t conn_idx) {
  const Conn& c = conns_.Get(conn_idx);
  if (c.tls == kNil || tls_.Get(c.tls).session.established()) return false;
  w_.stats_.tls_handshake_failures[static_cast<int>(tls::HandshakeFailure::kClientClosed)].Add();
  w_.CloseConn(conn_idx);
  return true;
}

bool TlsLayer::OnHandshakeTimeout(uint32_t conn_idx) {
  const Conn& c = conns_.Get(conn_idx);
  if (c.tls == kNil || tls_.Get(c.tls).session.established()) return false;
  if (c.kind == ConnKind::kClient) {
    HandshakeFailed(conn_idx, tls::HandshakeFailure::kTimeout);
  } else {
    UpstreamFailed(conn_idx, ErrorCause::kConnectTimeout);  // the handshake is the connect
  }
  return true;
}

}  // namespace zproxy::dataplane::transport
