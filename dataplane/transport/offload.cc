// kTLS hand-over for TLS listener connections. After the handshake the receive is paused
// and the last handshake bytes (tickets) go out; once the socket is quiet (no receive armed,
// nothing unsent; the session's input window is always used up) the keys go to the kernel
// (dataplane/tls/kernel_offload.h -> dataplane/ktls). Installed: BoringSSL's state is freed
// and the ordinary plaintext paths carry the connection; otherwise it stays in userspace TLS.
// On a kTLS socket a receive fails with EIO at a record that is not application data.
#include "dataplane/tls/kernel_offload.h"
#include "dataplane/transport/tls_layer.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane::transport {

void TlsLayer::MaybeOffload(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.tls == kNil || (c.flags & kClosing)) return;
  TlsConn& t = Of(c);
  if (!t.offload_pending) return;
  if ((c.flags & (kRecvArmed | kSendInflight)) || t.wire_count > 0) return;  // not yet quiet
  t.offload_pending = false;
  // Bytes the session already holds (the client's first request arrived with its
  // Finished and is still being decrypted, a partial record) come back as pending_data:
  // the kernel would start mid-stream, so such a connection stays in userspace.
  tls::OffloadOutcome outcome = tls::TryKernelOffload(c.fd, t.session.ssl());
  w_.stats_.tls_offload[static_cast<int>(outcome)].Add();
  if (outcome == tls::OffloadOutcome::kBroken) {
    Abort(conn_idx);  // TX keys are in the kernel, RX are not: the stream is unusable
    return;
  }
  if (outcome == tls::OffloadOutcome::kInstalled) {
    t.mode = tls::TlsMode::kKtls;
    // BoringSSL's record state is stale now and must never be used again; freeing it
    // also leaves the connection with no TLS memory but this small slot.
    t.session.Reset();
    t.context.reset();
  }
  w_.stats_.tls_connections[static_cast<int>(t.mode)].Add();
  w_.MaybeResumeRecv(conn_idx);
}

void TlsLayer::ControlRecord(uint32_t conn_idx, bool recv_ended) {
  Conn& c = conns_.Get(conn_idx);
  BlockPool& blocks = w_.blocks_;
  uint32_t b = blocks.AllocLarge();
  size_t n = 0;
  tls::ControlRecord what = tls::ReadControlRecord(c.fd, blocks.Data(b), blocks.Capacity(b), &n);
  switch (what) {
    case tls::ControlRecord::kData:
      w_.InPushBack(w_.Io(conn_idx), InSlice{b, 0, static_cast<uint32_t>(n), true});
      w_.ProcessClientInput(conn_idx);
      break;
    case tls::ControlRecord::kContinue:
      blocks.Free(b);
      break;
    case tls::ControlRecord::kCloseNotify:
      blocks.Free(b);
      w_.OnClientEof(conn_idx, 0);
      return;
    case tls::ControlRecord::kClose:
      blocks.Free(b);
      Abort(conn_idx);
      return;
  }
  Conn& c2 = conns_.Get(conn_idx);
  if (recv_ended && !(c2.flags & kClosing)) w_.ArmRecv(conn_idx);
}

}  // namespace zproxy::dataplane::transport
