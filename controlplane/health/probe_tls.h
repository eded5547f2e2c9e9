// TLS for the HTTP health checks of clusters with `tls:`. Built from the cluster's own
// settings (CA, SNI, verify, client certificate, minimum version) with the same choices as
// the data plane's upstream context (dataplane/tls/client_context.cc: TLS 1.2 ciphers, ALPN
// http/1.1, name or IP check), so a check sees what a proxied request would see. Both load
// certificates and set versions and ciphers with common/tls/context_setup (one source).
//
// The library is OpenSSL 3, zproxyd's TLS library (gRPC links it for the Admin API's mTLS);
// BoringSSL is the data plane's and must never be loaded into the same process: this links
// //common/tls:context_setup_openssl, the data plane the _boringssl build of the same file.
#pragma once

#include <memory>
#include <string>

struct ssl_ctx_st;
struct ssl_st;

namespace zproxy::health {

struct ProbeTlsSettings {
  // PEM contents (zproxyd inlines the files into the config it hands out); when empty the
  // file named by the *_path is read.
  std::string ca_pem, ca_path;
  std::string cert_pem, cert_path;
  std::string key_pem, key_path;
  std::string sni;  // empty: no SNI, the certificate must be valid for the endpoint's IP
  bool verify = true;
  bool min_tls13 = false;
};

class ProbeTlsContext {
 public:
  // Null with *error naming the part that failed ("ca: cannot read ...").
  static std::shared_ptr<const ProbeTlsContext> Create(const ProbeTlsSettings& settings,
                                                       std::string* error);
  ~ProbeTlsContext();
  ProbeTlsContext(const ProbeTlsContext&) = delete;
  ProbeTlsContext& operator=(const ProbeTlsContext&) = delete;

  // A new client connection on `fd` with SNI and the name (or `ip`) check set up; null on
  // failure. The caller frees it with SSL_free.
  ssl_st* NewSsl(int fd, const char* ip) const;
  const std::string& sni() const { return sni_; }
  bool verify() const { return verify_; }
  // Equal keys: the same checks (a config change that keeps them keeps running probes).
  const std::string& key() const { return key_; }

 private:
  ProbeTlsContext() = default;
  ssl_ctx_st* ctx_ = nullptr;
  std::string sni_;
  bool verify_ = true;
  std::string key_;
};

// Why a TLS handshake failed, for logs, WatchHealth and zproxyctl: "certificate expired",
// "certificate untrusted (...)", "certificate name mismatch (...)", or the library's reason
// (e.g. the server's "certificate required" alert). `ssl_error` is SSL_get_error's value.
std::string TlsHandshakeFailure(ssl_st* ssl, int ssl_error, int saved_errno);

}  // namespace zproxy::health
