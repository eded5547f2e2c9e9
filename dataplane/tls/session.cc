#include "dataplane/tls/session.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cstring>
#include <mutex>

#include "dataplane/tls/client_context.h"
#include "dataplane/tls/server_context.h"

namespace zproxy::tls {

// The BIO both directions share; its data pointer is the Session.
struct SessionBio {
  static int Read(BIO* bio, char* out, int len) {
    auto* s = static_cast<Session*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    if (s->in_len_ == 0) {
      BIO_set_retry_read(bio);
      return -1;
    }
    size_t n = std::min(s->in_len_, static_cast<size_t>(len));
    memcpy(out, s->in_, n);
    s->in_ += n;
    s->in_len_ -= n;
    return static_cast<int>(n);
  }

  static int Write(BIO* bio, const char* data, int len) {
    auto* s = static_cast<Session*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    if (!s->sink_->Append(data, static_cast<size_t>(len))) return -1;
    return len;
  }

  static long Ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

  static int Create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }

  // Built once per process; immutable afterwards.
  static const BIO_METHOD* Method() {
    static const BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "zproxy-session");
      BIO_meth_set_read(m, Read);
      BIO_meth_set_write(m, Write);
      BIO_meth_set_ctrl(m, Ctrl);
      BIO_meth_set_create(m, Create);
      return m;
    }();
    return method;
  }
};

bool Session::Start(const ServerContext& context, WireSink* sink) {
  Reset();
  sink_ = sink;
  ssl_ = SSL_new(context.ssl_ctx());
  if (ssl_ == nullptr) return false;
  BIO* bio = BIO_new(SessionBio::Method());
  if (bio == nullptr) {
    Reset();
    return false;
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);  // the same BIO both ways: one reference, now the SSL's
  SSL_set_app_data(ssl_, this);
  SSL_set_accept_state(ssl_);
  // Certificates and other handshake-only configuration are dropped once established.
  SSL_set_shed_handshake_config(ssl_, 1);
  return true;
}

SSL_SESSION* Session::TakeNewSession() {
  SSL_SESSION* s = new_session_;
  new_session_ = nullptr;
  return s;
}

void Session::OnNewClientSession(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<Session*>(SSL_get_app_data(ssl));
  if (self->new_session_ != nullptr) SSL_SESSION_free(self->new_session_);
  self->new_session_ = session;
}

bool Session::StartClient(const ClientContext& context, WireSink* sink, const char* ip,
                          SSL_SESSION* resume) {
  Reset();
  sink_ = sink;
  ssl_ = SSL_new(context.ssl_ctx());
  if (ssl_ == nullptr) return false;
  BIO* bio = BIO_new(SessionBio::Method());
  if (bio == nullptr) {
    Reset();
    return false;
  }
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_, bio, bio);
  SSL_set_app_data(ssl_, this);
  SSL_set_connect_state(ssl_);
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
  const std::string& sni = context.sni();
  bool ok = true;
  if (!sni.empty()) {
    ok = SSL_set_tlsext_host_name(ssl_, sni.c_str()) == 1;
    if (context.verify()) ok = ok && X509_VERIFY_PARAM_set1_host(param, sni.data(), sni.size());
  } else if (context.verify() && ip != nullptr) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(param, ip) == 1;
  }
  if (resume != nullptr) SSL_set_session(ssl_, resume);  // takes its own reference
  SSL_set_shed_handshake_config(ssl_, 1);
  first_byte_ = SSL3_RT_HANDSHAKE;  // the server's bytes are judged by BoringSSL alone
  if (!ok) Reset();
  ERR_clear_error();
  return ok;
}

UpstreamTlsFailure Session::upstream_failure() const {
  if (ssl_ == nullptr) return UpstreamTlsFailure::kHandshake;
  switch (SSL_get_verify_result(ssl_)) {
    case X509_V_OK:
      return UpstreamTlsFailure::kHandshake;
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return UpstreamTlsFailure::kExpired;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return UpstreamTlsFailure::kName;
    default:
      return UpstreamTlsFailure::kUntrusted;
  }
}

void Session::Reset() {
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (new_session_ != nullptr) SSL_SESSION_free(new_session_);
  new_session_ = nullptr;
  ssl_ = nullptr;
  sink_ = nullptr;
  in_ = nullptr;
  in_len_ = 0;
  first_byte_ = -1;
  established_ = false;
  unknown_sni_ = false;
  close_notify_sent_ = false;
  failure_ = HandshakeFailure::kProtocol;
}

void Session::MarkUnknownSni(SSL* ssl) {
  if (auto* s = static_cast<Session*>(SSL_get_app_data(ssl))) s->unknown_sni_ = true;
}

Session::Result Session::Classify(int ret, bool handshake) {
  int err = SSL_get_error(ssl_, ret);
  if (err == SSL_ERROR_WANT_READ) return Result::kWantInput;
  if (err == SSL_ERROR_ZERO_RETURN) return Result::kClosed;
  if (handshake) {
    uint32_t packed = ERR_peek_error();
    int lib = ERR_GET_LIB(packed);
    int reason = ERR_GET_REASON(packed);
    if (unknown_sni_) {
      failure_ = HandshakeFailure::kUnknownSni;
    } else if (first_byte_ != SSL3_RT_HANDSHAKE) {
      // A TLS connection starts with a handshake record (content type 22); anything
      // else is not TLS at all: plaintext HTTP, a port scanner, random bytes.
      failure_ = HandshakeFailure::kNotTls;
    } else if (lib == ERR_LIB_SSL &&
               (reason == SSL_R_NO_SHARED_CIPHER || reason == SSL_R_NO_SHARED_GROUP ||
                reason == SSL_R_NO_COMMON_SIGNATURE_ALGORITHMS)) {
      failure_ = HandshakeFailure::kNoSharedCipher;
    } else if (lib == ERR_LIB_SSL && reason == SSL_R_UNSUPPORTED_PROTOCOL) {
      failure_ = HandshakeFailure::kVersion;
    } else if (lib == ERR_LIB_SSL &&
               (reason == SSL_R_WRONG_VERSION_NUMBER || reason == SSL_R_HTTP_REQUEST ||
                reason == SSL_R_HTTPS_PROXY_REQUEST || reason == SSL_R_UNKNOWN_PROTOCOL)) {
      failure_ = HandshakeFailure::kNotTls;
    } else if (lib == ERR_LIB_SSL && reason >= SSL_AD_REASON_OFFSET) {
      failure_ = HandshakeFailure::kClientAlert;  // the client sent a fatal alert
    } else {
      failure_ = HandshakeFailure::kProtocol;
    }
  }
  ERR_clear_error();
  return Result::kFailed;
}

Session::Result Session::Handshake() {
  if (established_) return Result::kOk;
  int ret = SSL_do_handshake(ssl_);
  if (ret == 1) {
    established_ = true;
    // BoringSSL holds TLS 1.3 NewSessionTickets back until the first write, to share a
    // packet with the response. Send them now: a client that resumes later needs them
    // even if it sends no request, and kTLS may only take over once nothing is pending.
    if (SSL_write(ssl_, "", 0) < 0) return Classify(-1, false);
    return Result::kOk;
  }
  return Classify(ret, true);
}

Session::Result Session::Read(char* out, size_t cap, size_t* n) {
  *n = 0;
  int ret = SSL_read(ssl_, out, static_cast<int>(std::min<size_t>(cap, 1 << 30)));
  if (ret > 0) {
    *n = static_cast<size_t>(ret);
    return Result::kOk;
  }
  return Classify(ret, false);
}

Session::Result Session::Write(const char* data, size_t len) {
  while (len > 0) {
    int chunk = static_cast<int>(std::min<size_t>(len, 1 << 30));
    int ret = SSL_write(ssl_, data, chunk);
    if (ret <= 0) return Classify(ret, false);
    data += ret;
    len -= static_cast<size_t>(ret);
  }
  return Result::kOk;
}

void Session::CloseNotify() {
  if (close_notify_sent_ || ssl_ == nullptr || !established_) return;
  close_notify_sent_ = true;
  SSL_shutdown(ssl_);  // writes the alert; we do not wait for the peer's
  ERR_clear_error();
}

const char* Session::version() const { return ssl_ != nullptr ? SSL_get_version(ssl_) : ""; }

const char* Session::server_name() const {
  const char* name =
      ssl_ != nullptr ? SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name) : nullptr;
  return name != nullptr ? name : "";
}

const char* Session::cipher() const {
  const SSL_CIPHER* c = ssl_ != nullptr ? SSL_get_current_cipher(ssl_) : nullptr;
  return c != nullptr ? SSL_CIPHER_standard_name(c) : "";
}

std::string_view Session::alpn() const {
  if (ssl_ == nullptr) return {};
  const uint8_t* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  if (p == nullptr) return {};
  return std::string_view(reinterpret_cast<const char*>(p), len);
}

bool Session::resumed() const { return ssl_ != nullptr && SSL_session_reused(ssl_) == 1; }

bool Session::has_buffered_input() const { return ssl_ != nullptr && SSL_has_pending(ssl_) == 1; }

}  // namespace zproxy::tls
