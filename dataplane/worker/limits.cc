// Admission limits of the worker: Route.rate_limit (a route's shared token buckets,
// checked right after routing, for HTTP/1 and HTTP/2 requests alike) and
// Listener.max_connections (checked right after accept). The buckets and counters live
// in dataplane/ratelimit/, shared by every worker of the process.
#include <netinet/in.h>

#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

bool Worker::AllowRate(const routing::RouteEntry& route, Conn& c, const http::RequestHead& req,
                       Refusal* refusal) {
  const ratelimit::RateLimits* limits = snap_->rate_limits.get();
  const routing::RoutePolicy& policy = *route.policy;
  if (limits == nullptr || policy.rate_limit_index >= limits->size()) return true;
  const ratelimit::RouteLimiter& limiter = limits->At(policy.rate_limit_index);
  const uint64_t now = ratelimit::NowTicks();
  uint64_t wait = 0;
  switch (policy.rate_limit.key) {
    case route_policy::RateKeyKind::kNone:
      wait = limiter.Take(now);
      break;
    case route_policy::RateKeyKind::kClientAddress: {
      // The address bytes (4 or 16), not their text; unknown (no SO_PEERNAME) = shared.
      if (c.peer.sin6_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(&c.peer);
        wait = limiter.TakeKey(
            std::string_view(reinterpret_cast<const char*>(&v4->sin_addr), sizeof(v4->sin_addr)),
            now);
      } else if (c.peer.sin6_family == AF_INET6) {
        wait = limiter.TakeKey(std::string_view(reinterpret_cast<const char*>(&c.peer.sin6_addr),
                                                sizeof(c.peer.sin6_addr)),
                               now);
      } else {
        wait = limiter.Take(now);
      }
      break;
    }
    case route_policy::RateKeyKind::kHeader: {
      // The first field of that name; requests without it share the route's one bucket.
      const http::Field* found = nullptr;
      for (const http::Field& f : req.fields) {
        if (http1::EqualsIgnoreCase(f.name, policy.rate_limit.header)) {
          found = &f;
          break;
        }
      }
      wait = found != nullptr ? limiter.TakeKey(found->value, now) : limiter.Take(now);
      break;
    }
  }
  if (wait == 0) return true;
  *refusal = {429, "zproxy: rate limited\n", "rate_limited"};
  refusal->retry_after_s = ratelimit::RetryAfterSeconds(wait);
  return false;
}

bool Worker::AdmitConnection(uint16_t listener, int fd, bool fixed) {
  ratelimit::ListenerConnections* counts = snap_->connections.get();
  if (counts == nullptr || listener >= counts->size()) return true;
  if (counts->TryOpen(listener, snap_->listeners[listener].max_connections)) return true;
  // Over max_connections: closed at once (connection_limits.h says why), nothing sent.
  io_uring_sqe* sqe = ring_.Sqe();
  if (fixed) {
    io_uring_prep_close_direct(sqe, static_cast<unsigned>(fd));
  } else {
    io_uring_prep_close(sqe, fd);
  }
  io_uring_sqe_set_data64(sqe, io::UserData{io::Op::kNone, 0, 0, 0}.Pack());  // result unused
  return false;
}

void Worker::ReleaseConnection(uint16_t listener) {
  ratelimit::ListenerConnections* counts = snap_->connections.get();
  if (counts != nullptr && listener < counts->size()) counts->Close(listener);
}

}  // namespace zproxy::dataplane
