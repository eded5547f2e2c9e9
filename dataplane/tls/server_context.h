// The TLS configuration of one listener, built once per config snapshot and shared by all
// workers (an SSL_CTX is safe to use from several threads): its certificates (parsed once,
// handed to each connection by reference), SNI selection, ALPN, versions, ciphers and the
// session ticket keys. BoringSSL types stay out of this header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/tls/sni_table.h"
#include "dataplane/tls/ticket_keys.h"
#include "zproxy/v1/config.pb.h"

struct ssl_ctx_st;
struct ssl_st;
struct crypto_buffer_st;
struct evp_pkey_st;

namespace zproxy::tls {

class ServerContext {
 public:
  // Loads the certificates and builds the SSL_CTX. `tickets` may be null (tickets get
  // keys of their own). On error returns null and sets *error to "FIELD: reason" with
  // FIELD relative to the tls block (e.g. "certificates[1].key").
  static std::unique_ptr<ServerContext> Create(const zproxy::v1::ListenerTls& config,
                                               std::shared_ptr<TicketKeys> tickets,
                                               std::string* error);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  ssl_ctx_st* ssl_ctx() const { return ctx_; }
  uint32_t handshake_timeout_ms() const { return handshake_timeout_ms_; }
  size_t certificate_count() const { return certs_.size(); }
  // Names a certificate serves (SAN DNS names, else CN), for logs and tests.
  const std::vector<std::string>& names(size_t cert) const { return certs_[cert].names; }

 private:
  struct Certificate {
    std::vector<crypto_buffer_st*> chain;  // DER, leaf first
    evp_pkey_st* key = nullptr;
    bool ecdsa = false;
    std::vector<std::string> names;
  };

  ServerContext() = default;
  bool LoadCertificate(const zproxy::v1::TlsCertificate& c, const std::string& field,
                       std::string* error);
  // Called from BoringSSL's ClientHello callback: picks and installs the certificate.
  // Returns false for an SNI no certificate covers when strict_sni is set.
  bool SelectCertificate(ssl_st* ssl, const uint8_t* sigalgs, size_t sigalgs_len) const;
  friend struct ServerContextCallbacks;

  ssl_ctx_st* ctx_ = nullptr;
  std::vector<Certificate> certs_;
  std::vector<uint32_t> default_certs_;  // the first certificate and its other key types
  SniTable sni_;
  std::string alpn_wire_;  // length-prefixed protocol list, server preference
  bool strict_sni_ = false;
  uint32_t handshake_timeout_ms_ = 10000;
  std::shared_ptr<TicketKeys> tickets_;
};

}  // namespace zproxy::tls
