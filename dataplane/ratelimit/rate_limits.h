// The rate limiters of one config snapshot: one RouteLimiter per rate-limited route,
// indexed by RoutePolicy::rate_limit_index, shared by every worker (token_buckets.h).
//
// Built with the snapshot (BuildSnapshot). A route whose listener, identity (its name, or
// its match for an unnamed route) and limit (rate, burst, key) are unchanged keeps its
// limiter, buckets included, across config changes; a changed limit starts with full
// buckets, and its zproxy_rate_limited_total keeps counting as long as the route's
// identity stays. A data plane restart or handover starts with full buckets.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/ratelimit/token_buckets.h"
#include "dataplane/routing/route_policy.h"
#include "dataplane/routing/route_table.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::ratelimit {

// What /metrics shows per rate-limited route; kept while the route's identity is.
struct RouteCounters {
  std::atomic<uint64_t> limited{0};     // requests refused with 429
  std::atomic<uint64_t> collisions{0};  // keyed: a key had to share another key's bucket
};

class RouteLimiter {
 public:
  RouteLimiter(const routing::RateLimitPolicy& policy, std::shared_ptr<RouteCounters> counters);

  // 0: allowed. Otherwise refused (and counted): ticks until the bucket has a token.
  // The route's single bucket (key none), also for keyed requests without their key.
  uint64_t Take(uint64_t now) const { return Counted(Bucket::TryTake(single_, params_, now)); }
  // Keyed routes: the bucket of `key` (the client address bytes, the header's value).
  uint64_t TakeKey(std::string_view key, uint64_t now) const;

  const routing::RateLimitPolicy& policy() const { return policy_; }
  const RouteCounters& counters() const { return *counters_; }
  std::shared_ptr<RouteCounters> counters_ptr() const { return counters_; }
  bool SameLimit(const routing::RateLimitPolicy& other) const;

 private:
  uint64_t Counted(uint64_t wait) const {
    if (wait != 0) counters_->limited.fetch_add(1, std::memory_order_relaxed);
    return wait;
  }

  // The word every worker updates, on a cache line of its own.
  alignas(64) mutable std::atomic<uint64_t> single_{0};
  alignas(64) routing::RateLimitPolicy policy_;
  BucketParams params_;
  std::unique_ptr<KeyedBuckets> keyed_;  // key client_address / header
  std::shared_ptr<RouteCounters> counters_;
};

class RateLimits {
 public:
  struct Route {
    std::string listener;
    std::string route;     // the route's name, or "routes[N]" (its position) without one
    std::string identity;  // listener + name or match: what carries the limiter over
    std::shared_ptr<RouteLimiter> limiter;
  };

  // One limiter per route of `table` with a rate limit, reusing `previous`'s where the
  // route and its limit are unchanged (see above). `table` was built from `config`.
  static std::shared_ptr<const RateLimits> Build(const zproxy::v1::Config& config,
                                                 const routing::RouteTable& table,
                                                 const RateLimits* previous);

  // `index` is a RoutePolicy::rate_limit_index of the same snapshot: always < size().
  const RouteLimiter& At(uint32_t index) const { return *routes_[index].limiter; }
  size_t size() const { return routes_.size(); }
  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace zproxy::ratelimit
