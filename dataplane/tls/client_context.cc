#include "dataplane/tls/client_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

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
  if (!config.ca().empty() &&
      SSL_CTX_load_verify_locations(ctx, config.ca().c_str(), nullptr) != 1) {
    *error = "ca: cannot load \"" + config.ca() + "\": " + SslError();
    return nullptr;
  }
  if (cc->verify_ && config.ca().empty()) {
    *error = "ca: a CA file is required to verify the endpoints (or verify: false)";
    return nullptr;
  }
  SSL_CTX_set_verify(ctx, cc->verify_ ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!config.cert().empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, config.cert().c_str()) != 1) {
      *error = "cert: cannot load \"" + config.cert() + "\": " + SslError();
      return nullptr;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, config.key().c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      *error =
          "key: cannot load \"" + config.key() + "\" for the client certificate: " + SslError();
      return nullptr;
    }
  }
  return cc;
}

}  // namespace zproxy::tls
