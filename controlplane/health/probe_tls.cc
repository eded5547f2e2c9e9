#include "controlplane/health/probe_tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "common/tls/context_setup.h"

namespace zproxy::health {
namespace {

// The library's reason alone ("key values mismatch"), for probe settings and handshakes.
std::string SslErrorText() { return tlsctx::SslErrorReason(tlsctx::TakeSslError()); }

bool LoadCa(SSL_CTX* ctx, const ProbeTlsSettings& s, std::string* error) {
  tlsctx::LoadFailure f;
  if (tlsctx::LoadCaRoots(ctx, {s.ca_pem, s.ca_path}, &f)) return true;
  if (f.what == tlsctx::LoadFailure::What::kUnreadable) {
    *error = "ca: " + f.text;
  } else {
    *error = "ca: no PEM certificate in \"" + s.ca_path + "\"";
  }
  return false;
}

bool LoadClientCertificate(SSL_CTX* ctx, const ProbeTlsSettings& s, std::string* error) {
  using What = tlsctx::LoadFailure::What;
  tlsctx::LoadFailure f;
  if (tlsctx::UseCertificateAndKey(ctx, {s.cert_pem, s.cert_path}, {s.key_pem, s.key_path}, &f)) {
    return true;
  }
  if (f.what == What::kUnreadable) {
    *error = (f.in_key ? "key: " : "cert: ") + f.text;
  } else if (!f.in_key && f.what == What::kNoCertificate) {
    *error = "cert: no PEM certificate in \"" + s.cert_path + "\"";
  } else {
    *error = (f.in_key ? "key: " : "cert: ") + tlsctx::SslErrorReason(f.ssl_error);
  }
  return false;
}

}  // namespace

ProbeTlsContext::~ProbeTlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

std::shared_ptr<const ProbeTlsContext> ProbeTlsContext::Create(const ProbeTlsSettings& s,
                                                               std::string* error) {
  std::shared_ptr<ProbeTlsContext> c(new ProbeTlsContext());
  c->sni_ = s.sni;
  c->verify_ = s.verify;
  c->key_ = s.sni + '\0' + (s.verify ? "1" : "0") + (s.min_tls13 ? "3" : "2") + '\0' + s.ca_path +
            '\0' + s.ca_pem + '\0' + s.cert_path + '\0' + s.cert_pem + '\0' + s.key_path + '\0' +
            s.key_pem;
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    *error = "SSL_CTX_new: " + SslErrorText();
    return nullptr;
  }
  c->ctx_ = ctx;
  // The data plane's versions and TLS 1.2 suites: an endpoint that offers none of them fails
  // its check as it would fail real traffic.
  if (!tlsctx::ApplyVersionsAndCiphers(ctx, s.min_tls13)) {
    *error = "cipher list: " + SslErrorText();
    return nullptr;
  }
  // Every check is a full handshake: a check that resumed a session would not see a
  // certificate that changed (or expired) since.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  static const unsigned char kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn) - 1);
  const bool have_ca = !s.ca_pem.empty() || !s.ca_path.empty();
  if (have_ca && !LoadCa(ctx, s, error)) return nullptr;
  if (s.verify && !have_ca) {
    *error = "ca: a CA file is required to verify the endpoints (or verify: false)";
    return nullptr;
  }
  SSL_CTX_set_verify(ctx, s.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  const bool have_cert = !s.cert_pem.empty() || !s.cert_path.empty();
  if (have_cert && !LoadClientCertificate(ctx, s, error)) return nullptr;
  return c;
}

ssl_st* ProbeTlsContext::NewSsl(int fd, const char* ip) const {
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx_);
  if (ssl == nullptr) return nullptr;
  bool ok = SSL_set_fd(ssl, fd) == 1;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (!sni_.empty()) {
    ok = ok && SSL_set_tlsext_host_name(ssl, sni_.c_str()) == 1;
    if (verify_) ok = ok && X509_VERIFY_PARAM_set1_host(param, sni_.data(), sni_.size()) == 1;
  } else if (verify_ && ip != nullptr) {
    ok = ok && X509_VERIFY_PARAM_set1_ip_asc(param, ip) == 1;
  }
  SSL_set_connect_state(ssl);
  if (!ok) {
    SSL_free(ssl);
    ERR_clear_error();
    return nullptr;
  }
  return ssl;
}

std::string TlsHandshakeFailure(ssl_st* ssl, int ssl_error, int saved_errno) {
  const std::string prefix = "TLS handshake failed: ";
  const long v = SSL_get_verify_result(ssl);
  switch (v) {
    case X509_V_OK:
      break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      ERR_clear_error();
      return prefix + "certificate expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      ERR_clear_error();
      return prefix + "certificate not yet valid";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      ERR_clear_error();
      return prefix + "certificate name mismatch (" + X509_verify_cert_error_string(v) + ")";
    default:
      ERR_clear_error();
      return prefix + "certificate untrusted (" + X509_verify_cert_error_string(v) + ")";
  }
  if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN) {
    if (ERR_peek_error() == 0) {
      return prefix +
             (saved_errno != 0 ? std::strerror(saved_errno) : "connection closed by the endpoint");
    }
  }
  return prefix + SslErrorText();
}

}  // namespace zproxy::health
