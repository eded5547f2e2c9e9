// A route's policy, compiled once per snapshot from its config (proto Route): what zproxy
// answers itself (redirect, direct response), how the request is rewritten (path, headers,
// request ID), its timeouts, retries and rate limit. Immutable once built and shared by
// every worker; the code that carries it out is protocol-free (dataplane/proxy/), so HTTP/1
// and HTTP/2 clients get the same policy.
#pragma once

#include <re2/re2.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/route_policy_rules.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::routing {

// One header to set or add; `value` may hold ${variables} (route_policy_rules.h).
struct HeaderOp {
  std::string name;
  std::string value;
  bool has_variables = false;
};

// Request or response header changes: remove, then set (replaces), then add (appends).
struct HeaderChanges {
  std::vector<std::string> remove;
  std::vector<HeaderOp> set;
  std::vector<HeaderOp> add;
  bool empty() const { return remove.empty() && set.empty() && add.empty(); }
  // Fields of this name in the message are dropped (removed, or replaced by a set).
  bool Drops(std::string_view name) const;
  static HeaderChanges Compile(const zproxy::v1::HeaderChanges& config);
};

enum class RouteAction : uint8_t { kForward, kRedirect, kDirectResponse };

struct Redirect {
  std::string scheme;  // "" = the request's
  std::string host;    // "" = the request's (port stripped)
  uint32_t port = 0;   // 0 = the request's port if it had one and the scheme is unchanged
  std::string path;
  std::string prefix_rewrite;
  bool strip_query = false;
  uint16_t code = 301;
};

struct DirectResponse {
  uint16_t status = 200;
  std::string body;
  std::string content_type;
};

struct RetryPolicy {
  route_policy::RetryConditions on;
  uint32_t num_retries = 0;
  uint32_t per_try_timeout_ms = 0;
  uint32_t base_interval_ms = 25;
  uint32_t max_interval_ms = 250;
  bool non_idempotent = false;
};

struct RateLimitPolicy {
  double requests_per_second = 0;
  double burst = 0;
  route_policy::RateKeyKind key = route_policy::RateKeyKind::kNone;
  std::string header;  // lowercased, for RateKeyKind::kHeader
};

struct RoutePolicy {
  RouteAction action = RouteAction::kForward;
  Redirect redirect;
  DirectResponse direct;
  // Rewrites (forwarded requests).
  std::string prefix_rewrite;
  size_t matched_prefix_len = 0;           // how much of the path prefix_rewrite replaces
  bool prefix_rewrite_whole_path = false;  // the route matched an exact path
  std::unique_ptr<RE2> regex_rewrite;
  std::string regex_substitution;
  HeaderChanges request_headers;
  HeaderChanges response_headers;
  // Timeouts and retries (0 = none).
  uint32_t timeout_ms = 0;
  RetryPolicy retry;
  bool has_retry = false;
  // Rate limit: present when requests_per_second > 0; `rate_limit_index` is its place in
  // the data plane's shared buckets (one per rate-limited route).
  RateLimitPolicy rate_limit;
  bool has_rate_limit = false;
  uint32_t rate_limit_index = 0;

  // Whether the request needs more than the plain proxy path (a rewrite or header change).
  bool rewrites_request() const {
    return !prefix_rewrite.empty() || regex_rewrite != nullptr || !request_headers.empty();
  }

  // Builds the policy of `route` (already validated by route_policy::CheckRoute). Returns
  // nullptr for a route with no policy at all (the common case: nothing to do per request).
  static std::shared_ptr<const RoutePolicy> Compile(const zproxy::v1::Route& route,
                                                    uint32_t* next_rate_limit_index);
};

}  // namespace zproxy::routing
