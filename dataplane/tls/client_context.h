// The TLS configuration towards one cluster's endpoints, built once per config snapshot and
// shared by all workers: trusted CAs, the client certificate, versions, the server name.
// BoringSSL types stay out of this header.
#pragma once

#include <memory>
#include <string>

#include "zproxy/v1/config.pb.h"

struct ssl_ctx_st;

namespace zproxy::tls {

class ClientContext {
 public:
  // On error returns null and sets *error to "FIELD: reason" with FIELD relative to the
  // cluster's tls block (e.g. "ca"). http2: ALPN offers "h2" (cluster protocol http2)
  // instead of "http/1.1".
  static std::unique_ptr<ClientContext> Create(const zproxy::v1::ClusterTls& config,
                                               std::string* error, bool http2 = false);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  ssl_ctx_st* ssl_ctx() const { return ctx_; }
  const std::string& sni() const { return sni_; }
  bool verify() const { return verify_; }

 private:
  ClientContext() = default;
  ssl_ctx_st* ctx_ = nullptr;
  std::string sni_;
  bool verify_ = true;
};

}  // namespace zproxy::tls
