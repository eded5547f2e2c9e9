// Client sessions towards upstream endpoints, one slot per endpoint, owned by one worker's
// cluster state (no locking): a new connection to an endpoint resumes the session of an
// earlier one (TLS 1.2 ticket or TLS 1.3 PSK), so pool refills cost an abbreviated
// handshake instead of a full one. BoringSSL types stay out of this header.
#pragma once

#include <cstddef>
#include <vector>

struct ssl_session_st;

namespace zproxy::tls {

class SessionCache {
 public:
  SessionCache() = default;
  ~SessionCache();
  SessionCache(const SessionCache&) = delete;
  SessionCache& operator=(const SessionCache&) = delete;

  void Resize(size_t endpoints);
  // The session to offer to `endpoint`, or null (the cache keeps its reference).
  ssl_session_st* Get(size_t endpoint) const;
  // Takes ownership of `session` (one reference), replacing the previous one.
  void Put(size_t endpoint, ssl_session_st* session);

 private:
  std::vector<ssl_session_st*> slots_;
};

}  // namespace zproxy::tls
