#include "dataplane/tls/session_cache.h"

#include <openssl/ssl.h>

namespace zproxy::tls {

SessionCache::~SessionCache() {
  for (SSL_SESSION* s : slots_) {
    if (s != nullptr) SSL_SESSION_free(s);
  }
}

void SessionCache::Resize(size_t endpoints) {
  for (size_t i = endpoints; i < slots_.size(); i++) {
    if (slots_[i] != nullptr) SSL_SESSION_free(slots_[i]);
  }
  slots_.resize(endpoints, nullptr);
}

SSL_SESSION* SessionCache::Get(size_t endpoint) const {
  return endpoint < slots_.size() ? slots_[endpoint] : nullptr;
}

void SessionCache::Put(size_t endpoint, SSL_SESSION* session) {
  if (endpoint >= slots_.size()) {
    SSL_SESSION_free(session);
    return;
  }
  if (slots_[endpoint] != nullptr) SSL_SESSION_free(slots_[endpoint]);
  slots_[endpoint] = session;
}

}  // namespace zproxy::tls
