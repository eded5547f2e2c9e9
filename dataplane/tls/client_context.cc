#include "dataplane/tls/client_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/tls/context_setup.h"
#include "dataplane/tls/pem_source.h"
#include "dataplane/tls/session.h"

namespace zproxy::tls {
namespace {

using tlsctx::LoadFailure;

// The CA bundle (from the inlined contents or the file) into the context's trust store.
bool LoadCa(SSL_CTX* ctx, const zproxy::v1::ClusterTls& config, std::string* error) {
  LoadFailure f;
  if (tlsctx::LoadCaRoots(ctx, PemFrom(config.ca_pem(), config.ca()), &f)) return true;
  if (f.what == LoadFailure::What::kUnreadable) {
    *error = "ca: " + f.text;
  } else {
    *error = "ca: cannot load \"" + config.ca() + "\": no PEM certificate";
  }
  return false;
}

// The client certificate chain (leaf first) and its key.
bool LoadClientCertificate(SSL_CTX* ctx, const zproxy::v1::ClusterTls& config, std::string* error) {
  LoadFailure f;
  if (tlsctx::UseCertificateAndKey(ctx, PemFrom(config.cert_pem(), config.cert()),
                                   PemFrom(config.key_pem(), config.key()), &f)) {
    return true;
  }
  if (f.what == LoadFailure::What::kUnreadable) {
    *error = (f.in_key ? "key: " : "cert: ") + f.text;
  } else if (f.in_key) {
    *error = "key: cannot load \"" + config.key() +
             "\" for the client certificate: " + tlsctx::SslErrorText(f.ssl_error);
  } else if (f.what == LoadFailure::What::kNoCertificate) {
    *error = "cert: cannot load \"" + config.cert() + "\": no PEM certificate";
  } else {
    *error = "cert: cannot load \"" + config.cert() + "\": " + tlsctx::SslErrorText(f.ssl_error);
  }
  return false;
}

}  // namespace

ClientContext::~ClientContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

std::unique_ptr<ClientContext> ClientContext::Create(const zproxy::v1::ClusterTls& config,
                                                     std::string* error, bool http2) {
  std::unique_ptr<ClientContext> cc(new ClientContext());
  cc->sni_ = config.sni();
  cc->verify_ = !config.has_verify() || config.verify();
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) {
    *error = tlsctx::SslError("SSL_CTX_new");
    return nullptr;
  }
  cc->ctx_ = ctx;
  if (!tlsctx::ApplyVersionsAndCiphers(ctx, config.min_version() == "TLS1_3")) {
    *error = tlsctx::SslError("cipher list");
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
  static const uint8_t kAlpnH2[] = "\x02h2";
  if (http2) {
    SSL_CTX_set_alpn_protos(ctx, kAlpnH2, sizeof(kAlpnH2) - 1);
  } else {
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof(kAlpn) - 1);
  }
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
