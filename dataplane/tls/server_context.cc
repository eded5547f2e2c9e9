#include "dataplane/tls/server_context.h"

#include <openssl/bytestring.h>
#include <openssl/pool.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "common/tls/context_setup.h"
#include "dataplane/tls/pem_source.h"
#include "dataplane/tls/session.h"

namespace zproxy::tls {

namespace {

std::vector<std::string> NamesOf(X509* x) {
  std::vector<std::string> names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (size_t i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      const ASN1_IA5STRING* s = gn->d.dNSName;
      names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(sans);
  }
  if (!names.empty()) return names;
  // No DNS SANs: the subject CN (what clients used before SANs).
  X509_NAME* subject = X509_get_subject_name(x);
  int idx = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (idx >= 0) {
    ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, idx));
    names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
                       static_cast<size_t>(ASN1_STRING_length(cn)));
  }
  return names;
}

// ECDSA signature schemes (TLS 1.2 and 1.3 code points): ecdsa_secp256r1_sha256,
// ecdsa_secp384r1_sha384, ecdsa_secp521r1_sha512, ecdsa_sha1.
bool OffersEcdsa(const uint8_t* sigalgs, size_t len) {
  CBS cbs, list;
  CBS_init(&cbs, sigalgs, len);
  if (!CBS_get_u16_length_prefixed(&cbs, &list)) return false;
  uint16_t alg;
  while (CBS_get_u16(&list, &alg)) {
    if ((alg & 0xff) == 0x03) return true;  // hash | ecdsa(3) in the TLS 1.2 encoding
  }
  return false;
}

}  // namespace

// The static callbacks BoringSSL calls; they reach the ServerContext through the
// SSL_CTX's app data.
struct ServerContextCallbacks {
  static const ServerContext* Of(const SSL* ssl) {
    return static_cast<const ServerContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  }

  static ssl_select_cert_result_t SelectCertificate(const SSL_CLIENT_HELLO* hello) {
    const uint8_t* sigalgs = nullptr;
    size_t sigalgs_len = 0;
    SSL_early_callback_ctx_extension_get(hello, TLSEXT_TYPE_signature_algorithms, &sigalgs,
                                         &sigalgs_len);
    if (!Of(hello->ssl)->SelectCertificate(hello->ssl, sigalgs, sigalgs_len)) {
      return ssl_select_cert_error;
    }
    return ssl_select_cert_success;
  }

  static int SelectAlpn(SSL* ssl, const uint8_t** out, uint8_t* out_len, const uint8_t* in,
                        unsigned in_len, void*) {
    const ServerContext* ctx = Of(ssl);
    uint8_t* selected = nullptr;
    // Server preference: the first of our protocols the client offers.
    if (SSL_select_next_proto(
            &selected, out_len, reinterpret_cast<const uint8_t*>(ctx->alpn_wire_.data()),
            static_cast<unsigned>(ctx->alpn_wire_.size()), in, in_len) != OPENSSL_NPN_NEGOTIATED) {
      // Nothing in common (e.g. an h2-only client): continue without ALPN; the HTTP/1.1
      // parser answers whatever comes.
      return SSL_TLSEXT_ERR_NOACK;
    }
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }

  static size_t TicketOverhead(SSL*) { return TicketKeys::kOverhead; }

  static int TicketSeal(SSL* ssl, uint8_t* out, size_t* out_len, size_t max_out, const uint8_t* in,
                        size_t in_len) {
    return Of(ssl)->tickets_->Seal(in, in_len, out, max_out, out_len) ? 1 : 0;
  }

  static ssl_ticket_aead_result_t TicketOpen(SSL* ssl, uint8_t* out, size_t* out_len,
                                             size_t max_out, const uint8_t* in, size_t in_len) {
    return Of(ssl)->tickets_->Open(in, in_len, out, max_out, out_len)
               ? ssl_ticket_aead_success
               : ssl_ticket_aead_ignore_ticket;
  }
};

namespace {
const SSL_TICKET_AEAD_METHOD kTicketMethod = {
    ServerContextCallbacks::TicketOverhead,
    ServerContextCallbacks::TicketSeal,
    ServerContextCallbacks::TicketOpen,
};
}  // namespace

ServerContext::~ServerContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  for (auto& c : certs_) {
    for (CRYPTO_BUFFER* b : c.chain) CRYPTO_BUFFER_free(b);
    if (c.key != nullptr) EVP_PKEY_free(c.key);
  }
}

bool ServerContext::LoadCertificate(const zproxy::v1::TlsCertificate& c, const std::string& field,
                                    std::string* error) {
  using What = tlsctx::LoadFailure::What;
  std::vector<tlsctx::X509Ptr> chain;
  tlsctx::KeyPtr key;
  tlsctx::LoadFailure f;
  if (!tlsctx::ReadCertificateAndKey(PemFrom(c.cert_pem(), c.cert()), PemFrom(c.key_pem(), c.key()),
                                     &chain, &key, &f)) {
    const std::string part = field + (f.in_key ? ".key: " : ".cert: ");
    switch (f.what) {
      case What::kUnreadable:
        *error = part + f.text;
        break;
      case What::kNoCertificate:
        *error = part + "\"" + c.cert() + "\" holds no PEM certificate";
        break;
      case What::kNoKey:
        *error = part + "\"" + c.key() + "\" holds no PEM private key (" +
                 tlsctx::SslErrorText(f.ssl_error, "no PEM data") + ")";
        break;
      default:  // kKeyMismatch
        *error = part + "the private key does not match the certificate \"" + c.cert() + "\"";
        break;
    }
    return false;
  }
  const int type = EVP_PKEY_id(key.get());
  if (type != EVP_PKEY_EC && type != EVP_PKEY_RSA) {
    *error = field + ".key: only ECDSA and RSA keys are supported";
    return false;
  }
  // Parsed once: each connection gets the DER buffers and the key by reference.
  Certificate cert;
  for (const tlsctx::X509Ptr& x : chain) {
    uint8_t* der = nullptr;
    int len = i2d_X509(x.get(), &der);
    if (len > 0) {
      cert.chain.push_back(CRYPTO_BUFFER_new(der, static_cast<size_t>(len), nullptr));
      OPENSSL_free(der);
    }
  }
  cert.key = key.release();
  cert.ecdsa = type == EVP_PKEY_EC;
  cert.names = NamesOf(chain.front().get());
  certs_.push_back(std::move(cert));  // freed by the destructor
  return true;
}

bool ServerContext::SelectCertificate(SSL* ssl, const uint8_t* sigalgs, size_t sigalgs_len) const {
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  const std::vector<uint32_t>* candidates = sni != nullptr ? sni_.Find(sni) : nullptr;
  if (candidates == nullptr) {
    if (sni != nullptr && strict_sni_) {
      Session::MarkUnknownSni(ssl);
      return false;
    }
    candidates = &default_certs_;
  }
  // Several key types for the name: ECDSA if the client can verify it (smaller, faster),
  // else RSA. A TLS 1.2 client without signature_algorithms implies RSA/SHA-1.
  bool ecdsa_ok = sigalgs != nullptr && OffersEcdsa(sigalgs, sigalgs_len);
  uint32_t pick = (*candidates)[0];
  for (uint32_t i : *candidates) {
    if (certs_[i].ecdsa == ecdsa_ok) {
      pick = i;
      break;
    }
  }
  const Certificate& c = certs_[pick];
  return SSL_set_chain_and_key(ssl, c.chain.data(), c.chain.size(), c.key, nullptr) == 1;
}

std::unique_ptr<ServerContext> ServerContext::Create(const zproxy::v1::ListenerTls& config,
                                                     std::shared_ptr<TicketKeys> tickets,
                                                     std::string* error) {
  std::unique_ptr<ServerContext> sc(new ServerContext());
  if (config.certificates_size() == 0) {
    *error = "certificates: at least one certificate is required";
    return nullptr;
  }
  for (int i = 0; i < config.certificates_size(); i++) {
    std::string field = "certificates[" + std::to_string(i) + "]";
    if (!sc->LoadCertificate(config.certificates(i), field, error)) return nullptr;
    for (const std::string& name : sc->certs_.back().names) {
      sc->sni_.Add(name, static_cast<uint32_t>(i));
    }
  }
  sc->default_certs_.push_back(0);
  if (!sc->certs_[0].names.empty()) {
    if (const auto* same = sc->sni_.Find(sc->certs_[0].names[0])) {
      for (uint32_t i : *same) {
        if (i != 0) sc->default_certs_.push_back(i);
      }
    }
  }
  sc->strict_sni_ = config.strict_sni();
  sc->handshake_timeout_ms_ =
      config.handshake_timeout_ms() != 0 ? config.handshake_timeout_ms() : 10000;
  for (const std::string& p : config.alpn()) {
    if (p.empty() || p.size() > 255) {
      *error = "alpn: protocol names are 1..255 bytes";
      return nullptr;
    }
    sc->alpn_wire_.push_back(static_cast<char>(p.size()));
    sc->alpn_wire_ += p;
  }
  if (sc->alpn_wire_.empty()) sc->alpn_wire_ = std::string("\x08http/1.1", 9);

  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) {
    *error = tlsctx::SslError("SSL_CTX_new");
    return nullptr;
  }
  sc->ctx_ = ctx;
  SSL_CTX_set_app_data(ctx, sc.get());
  if (!config.min_version().empty() && config.min_version() != "TLS1_2" &&
      config.min_version() != "TLS1_3") {
    *error = "min_version: must be \"TLS1_2\" or \"TLS1_3\"";
    return nullptr;
  }
  if (!tlsctx::ApplyVersionsAndCiphers(ctx, config.min_version() == "TLS1_3")) {
    *error = tlsctx::SslError("cipher list");
    return nullptr;
  }
  SSL_CTX_set_select_certificate_cb(ctx, ServerContextCallbacks::SelectCertificate);
  SSL_CTX_set_alpn_select_cb(ctx, ServerContextCallbacks::SelectAlpn, nullptr);
  // No server-side session cache: it would be per snapshot and cost memory per session.
  // Resumption uses tickets, whose keys every worker shares.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (config.session_tickets_disable()) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  } else {
    uint32_t rotation =
        config.session_ticket_rotation_s() != 0 ? config.session_ticket_rotation_s() : 3600;
    sc->tickets_ = tickets ? std::move(tickets) : std::make_shared<TicketKeys>(rotation);
    SSL_CTX_set_ticket_aead_method(ctx, &kTicketMethod);
    // A ticket outlives its key by at most one rotation; say so to the client.
    SSL_CTX_set_timeout(ctx, 2 * rotation);
    SSL_CTX_set_session_psk_dhe_timeout(ctx, 2 * rotation);
    SSL_CTX_set_num_tickets(ctx, 1);
  }
  return sc;
}

}  // namespace zproxy::tls
