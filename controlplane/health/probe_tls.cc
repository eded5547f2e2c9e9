#include "controlplane/health/probe_tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>

namespace zproxy::health {
namespace {

// The data plane's TLS 1.2 suites (dataplane/tls/client_context.cc): an endpoint that
// offers none of them fails its check as it would fail real traffic.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string SslErrorText() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(e);
  if (reason != nullptr) return reason;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

Bio OpenPem(const std::string& pem, const std::string& path, std::string* error) {
  if (!pem.empty()) return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Bio b(BIO_new_file(path.c_str(), "r"));
  if (!b) {
    const int err = errno;
    ERR_clear_error();
    *error = "cannot read \"" + path + "\": " + std::strerror(err);
  }
  return b;
}

bool LoadCa(SSL_CTX* ctx, const ProbeTlsSettings& s, std::string* error) {
  std::string why;
  Bio b = OpenPem(s.ca_pem, s.ca_path, &why);
  if (!b) {
    *error = "ca: " + why;
    return false;
  }
  int added = 0;
  while (X509* x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) {
    if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x) == 1) added++;
    X509_free(x);
  }
  ERR_clear_error();  // the loop ends on "no start line"
  if (added == 0) {
    *error = "ca: no PEM certificate in \"" + s.ca_path + "\"";
    return false;
  }
  return true;
}

bool LoadClientCertificate(SSL_CTX* ctx, const ProbeTlsSettings& s, std::string* error) {
  std::string why;
  Bio cb = OpenPem(s.cert_pem, s.cert_path, &why);
  if (!cb) {
    *error = "cert: " + why;
    return false;
  }
  int n = 0;
  while (X509* x = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr)) {
    // Leaf first, then its chain (add1 takes its own reference).
    const int ok = n == 0 ? SSL_CTX_use_certificate(ctx, x) : SSL_CTX_add1_chain_cert(ctx, x);
    X509_free(x);
    if (ok != 1) {
      *error = "cert: " + SslErrorText();
      return false;
    }
    n++;
  }
  ERR_clear_error();
  if (n == 0) {
    *error = "cert: no PEM certificate in \"" + s.cert_path + "\"";
    return false;
  }
  Bio kb = OpenPem(s.key_pem, s.key_path, &why);
  if (!kb) {
    *error = "key: " + why;
    return false;
  }
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr);
  const bool ok = key != nullptr && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
                  SSL_CTX_check_private_key(ctx) == 1;
  if (key != nullptr) EVP_PKEY_free(key);
  if (!ok) {
    *error = "key: " + SslErrorText();
    return false;
  }
  return true;
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
  SSL_CTX_set_min_proto_version(ctx, s.min_tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) {
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
