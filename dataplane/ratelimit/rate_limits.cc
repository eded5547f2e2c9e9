#include "dataplane/ratelimit/rate_limits.h"

#include <unordered_map>

namespace zproxy::ratelimit {

RouteLimiter::RouteLimiter(const routing::RateLimitPolicy& policy,
                           std::shared_ptr<RouteCounters> counters)
    : policy_(policy),
      params_(BucketParams::Of(policy.requests_per_second, policy.burst)),
      counters_(counters != nullptr ? std::move(counters) : std::make_shared<RouteCounters>()) {
  if (policy.key != route_policy::RateKeyKind::kNone) keyed_ = std::make_unique<KeyedBuckets>();
}

uint64_t RouteLimiter::TakeKey(std::string_view key, uint64_t now) const {
  if (keyed_ == nullptr) return Take(now);
  bool collided = false;
  uint64_t wait = keyed_->TryTake(KeyHash(key), params_, now, &collided);
  if (collided) counters_->collisions.fetch_add(1, std::memory_order_relaxed);
  return Counted(wait);
}

bool RouteLimiter::SameLimit(const routing::RateLimitPolicy& other) const {
  return policy_.requests_per_second == other.requests_per_second && policy_.burst == other.burst &&
         policy_.key == other.key && policy_.header == other.header;
}

std::shared_ptr<const RateLimits> RateLimits::Build(const zproxy::v1::Config& config,
                                                    const routing::RouteTable& table,
                                                    const RateLimits* previous) {
  std::unordered_map<std::string, const Route*> before;
  if (previous != nullptr) {
    for (const Route& r : previous->routes_) before.emplace(r.identity, &r);
  }
  auto out = std::make_shared<RateLimits>();
  out->routes_.resize(table.rate_limit_count());
  for (int li = 0; li < config.listeners_size(); ++li) {
    const auto& listener = config.listeners(li);
    for (int ri = 0; ri < listener.routes_size(); ++ri) {
      const routing::RouteEntry* entry = table.Entry(li, ri);
      if (entry == nullptr || entry->policy == nullptr || !entry->policy->has_rate_limit) continue;
      const auto& route = listener.routes(ri);
      Route& r = out->routes_[entry->policy->rate_limit_index];
      r.listener = listener.name();
      r.route = !route.name().empty() ? route.name() : "routes[" + std::to_string(ri) + "]";
      r.identity = std::to_string(listener.name().size()) + ':' + listener.name() +
                   (!route.name().empty() ? "name:" + route.name()
                                          : "match:" + route.match().SerializeAsString());
      const routing::RateLimitPolicy& policy = entry->policy->rate_limit;
      std::shared_ptr<RouteCounters> counters;
      auto it = before.find(r.identity);
      if (it != before.end()) {
        const Route& old = *it->second;
        before.erase(it);  // a duplicate identity (an unreachable twin) starts afresh
        if (old.limiter->SameLimit(policy)) {
          r.limiter = old.limiter;
          continue;
        }
        counters = old.limiter->counters_ptr();
      }
      r.limiter = std::make_shared<RouteLimiter>(policy, std::move(counters));
    }
  }
  return out;
}

}  // namespace zproxy::ratelimit
