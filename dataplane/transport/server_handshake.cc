// TLS listeners: the server handshake of a client connection. The handshake timeout runs
// from accept until the handshake is done, then the listener's header timeout; a failed
// handshake is counted by reason and closes the connection after BoringSSL's alert.
#include <algorithm>
#include <cstring>

#include "dataplane/tls/kernel_offload.h"
#include "dataplane/tls/server_context.h"
#include "dataplane/transport/tls_layer.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane::transport {

using tls::HandshakeFailure;

bool TlsLayer::Accept(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  const auto& context = w_.snap_->listeners[c.owner].tls;
  TlsConn& t = Attach(c, context);
  if (!t.session.Start(*context, &t)) {
    t.Reset();
    tls_.Free(c.tls);
    c.tls = kNil;
    return false;
  }
  w_.timers_.Arm(w_.t_tls_handshake_[c.owner], conn_idx, w_.NowMs());
  return true;
}

void TlsLayer::HandshakeDone(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  TlsConn& t = Of(c);
  w_.stats_.tls_handshakes[t.session.resumed() ? 1 : 0].Add();
  t.version = t.session.version();
  t.cipher = t.session.cipher();
  std::string_view sni = t.session.server_name();
  t.sni_len = static_cast<uint8_t>(std::min<size_t>(sni.size(), sizeof(t.sni) - 1));
  memcpy(t.sni, sni.data(), t.sni_len);
  t.app_protocol = AppProtocolOf(t.session.alpn());
  // From here on the ordinary request head timeout applies.
  w_.timers_.Arm(w_.t_client_header_[c.owner], conn_idx, w_.NowMs());
  EncryptAndSend(conn_idx);  // Finished / NewSessionTicket
  // kTLS needs a regular descriptor (io_uring fixed files are not in the fd table) and
  // a quiet socket: no receive armed (a completion in flight would carry ciphertext),
  // nothing unsent, nothing buffered in the session.
  if (!tls::KernelOffloadAvailable()) {
    w_.stats_.tls_offload[static_cast<int>(tls::OffloadOutcome::kNoKernelSupport)].Add();
  } else if (c.flags & kFixedFile) {
    w_.stats_.tls_offload[static_cast<int>(tls::OffloadOutcome::kFixedFile)].Add();
  } else {
    t.offload_pending = true;
    w_.PauseRecv(conn_idx);
    MaybeOffload(conn_idx);
    return;
  }
  w_.stats_.tls_connections[static_cast<int>(tls::TlsMode::kUserspace)].Add();
}

void TlsLayer::HandshakeFailed(uint32_t conn_idx, HandshakeFailure why) {
  w_.stats_.tls_handshake_failures[static_cast<int>(why)].Add();
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & kClosing) return;
  TlsConn& t = Of(c);
  w_.timers_.Disarm(conn_idx);
  w_.DropInput(conn_idx);
  if (t.wire_count == 0 && !(c.flags & kSendInflight)) {
    w_.CloseConn(conn_idx);
    return;
  }
  // BoringSSL queued an alert: send it, then close (nothing more is read).
  c.flags |= kCloseAfterSend;
  w_.PauseRecv(conn_idx);
  EncryptAndSend(conn_idx);
}

}  // namespace zproxy::dataplane::transport
