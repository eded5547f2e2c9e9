#include "dataplane/tls/client_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "dataplane/tls/pem_source.h"
#include "dataplane/tls/session.h"

namespace zproxy::tls {
namespace {

constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string SslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

// The CA bundle (from the inlined contents or the file) into the context's trust store.
bool LoadCa(SSL_CTX* ctx, const zproxy::v1::ClusterTls& config, std::string* error) {
  std::string why;
  PemBio b = OpenPem(config.ca_pem(), config.ca(), &why);
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
    *error = "ca: cannot load \"" + config.ca() + "\": no PEM certificate";
    return false;
  }
  return true;
}

// The client certificate chain (leaf first) and its key.
bool LoadClientCertificate(SSL_CTX* ctx, const zproxy::v1::ClusterTls& config, std::string* error) {
  std::string why;
  PemBio cb = OpenPem(config.cert_pem(), config.cert(), &why);
  if (!cb) {
    *error = "cert: " + why;
    return false;
  }
  int n = 0;
  while (X509* x = PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr)) {
    const int ok = n == 0 ? SSL_CTX_use_certificate(ctx, x) : SSL_CTX_add1_chain_cert(ctx, x);
    X509_free(x);
    if (ok != 1) {
      *error = "cert: cannot load \"" + config.cert() + "\": " + SslError();
      return false;
    }
    n++;
  }
  ERR_clear_error();
  if (n == 0) {
    *error = "cert: cannot load \"" + config.cert() + "\": no PEM certificate";
    return false;
  }
  PemBio kb = OpenPem(config.key_pem(), config.key(), &why);
  if (!kb) {
    *error = "key: " + why;
    return false;
  }
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr);
  const bool ok = key != nullptr && SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
                  SSL_CTX_check_private_key(ctx) == 1;
  if (key != nullptr) EVP_PKEY_free(key);
  if (!ok) {
    *error = "key: cannot load \"" + config.key() + "\" for the client certificate: " + SslError();
    return false;
  }
  return true;
}

}  // namespace

ClientContext::~ClientContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

std::unique_ptr<ClientContext> ClientContext::Create(const zproxy::v1::ClusterTls& config,
                                                     std::string* error) {
  std::unique_ptr<ClientContext> cc(new ClientContext());
  cc->sni_ = config.sni();
  cc->verify_ = !config.has_verify() || config.verify();
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) {
    *error = "SSL_CTX_new: " + SslError();
    return nullptr;
  }
  cc->ctx_ = ctx;
  SSL_CTX_set_min_proto_version(ctx,
                                config.min_version() == "TLS1_3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (!SSL_CTX_set_strict_cipher_list(ctx, kTls12Ciphers)) {
    *error = "cipher list: " + SslError();
    return nullptr;
  }
  // Sessions are kept per worker and endpoint (tls::SessionCache), not in the SSL_CTX:
  // the callback hands each new one to the connection's Session.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL);
  SSL_CTX_sess_set_new_cb(ctx, [](SSL* ssl, SSL_SESSION* session) {
    Session::OnNewClientSession(ssl, session);
    return 1;  // the reference is ours
  });
  static const uint8_t kAlpn[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn) - 1);
  if (!config.ca().empty() && !LoadCa(ctx, config, error)) return nullptr;
  if (cc->verify_ && config.ca().empty()) {
    *error = "ca: a CA file is required to verify the endpoints (or verify: false)";
    return nullptr;
  }
  SSL_CTX_set_verify(ctx, cc->verify_ ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!config.cert().empty() && !LoadClientCertificate(ctx, config, error)) return nullptr;
  return cc;
}

}  // namespace zproxy::tls
