// HTTP router: an immutable table compiled from one config snapshot, looked up per request.
//
// Lifecycle: the snapshot applier calls RouteTable::Build once per config version; the
// result is shared (shared_ptr<const RouteTable>) by every worker, which swaps its pointer
// when a new version is applied. Nothing in a built table changes, so lookups need no locks.
//
// Matching semantics: within a listener, routes are tried in config order and the FIRST
// route whose host, path and method conditions all hold wins. This is Envoy's rule. nginx
// users should note it is not nginx's "longest prefix location wins": put the more specific
// routes (e.g. prefix "/api/v2") before the general ones (prefix "/").
//  - host: empty list = any host. Otherwise the request's Host (port stripped, case
//    folded, one trailing dot ignored) must equal one of the entries, or end in a
//    wildcard's suffix: "*.example.com" matches "a.example.com" and "a.b.example.com",
//    not "example.com". IPv6 literals are written "[::1]".
//  - path: `path` = exact match, `prefix` = byte prefix ("/api" also matches "/apix",
//    as in Envoy; write "/api/" to require the separator); neither = any path. The caller
//    passes the path without the query string, so a configured "?" never matches.
//    Comparison is case-sensitive (paths are).
//  - method: empty list = any; else exact, case-sensitive (RFC 9110 methods are), so a
//    configured "get" never matches a GET request.
//  - regex: RE2 over the whole path (without the query), instead of path or prefix.
//  - headers: each condition tests the first field of its name (case-insensitive):
//    exact, prefix, whole-value regex, present/absent; `invert` negates it.
//  - query_params: each tests the first parameter of its name in the raw query: exact,
//    whole-value regex, present/absent. Values are compared as sent (not percent-decoded).
#pragma once

#include <re2/re2.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/http/message.h"
#include "dataplane/routing/host_pattern.h"
#include "dataplane/routing/route_policy.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::routing {

// What a request is routed to. Owned by the RouteTable; valid as long as it is.
struct RouteEntry {
  uint32_t cluster_index = 0;  // index into Config.clusters of the snapshot
  std::string cluster_name;
  std::string host_rewrite;  // Host sent upstream; "" = keep the client's
  uint32_t listener_index = 0;
  uint32_t route_index = 0;  // position in Config.listeners[listener_index].routes
  // Dense index over all routes of all listeners (0..RouteTable::route_count()-1), so
  // per-worker metrics can be a flat array instead of a map.
  uint32_t stat_index = 0;
  // Redirect, direct response, rewrites, header changes, timeouts, retries, rate limit;
  // null for a route that only forwards (nothing more to do per request).
  std::shared_ptr<const RoutePolicy> policy;
  RouteAction action() const { return policy ? policy->action : RouteAction::kForward; }
};

// What a route is matched against; every view is the request's.
struct RequestView {
  std::string_view host;  // raw Host / :authority (may carry a port)
  std::string_view path;  // without the query
  std::string_view method;
  std::string_view query;  // after the '?', "" when none
  std::span<const http::Field> fields;
};

class RouteTable {
 public:
  // Compiles and validates the routes of every listener. On a configuration error returns
  // nullptr and sets *error to a message that names the field, e.g.
  // `listeners[0].routes[2].cluster: unknown cluster "api"`. Never throws on bad input.
  static std::shared_ptr<const RouteTable> Build(const zproxy::v1::Config& config,
                                                 std::string* error);

  // Hot path: allocates nothing. `host` is the raw Host header value (may carry a port),
  // `path` the request path without the query. Returns nullptr when no route matches (the
  // proxy answers 404) or listener_index is out of range (e.g. a tcp_proxy listener has no
  // routes and always yields nullptr).
  const RouteEntry* Match(uint32_t listener_index, std::string_view host, std::string_view path,
                          std::string_view method) const {
    return Match(listener_index, RequestView{host, path, method, {}, {}});
  }
  const RouteEntry* Match(uint32_t listener_index, const RequestView& request) const;

  size_t listener_count() const { return listeners_.size(); }
  size_t route_count() const { return route_count_; }
  // Routes with a rate limit (RoutePolicy::rate_limit_index is below this).
  size_t rate_limit_count() const { return rate_limit_count_; }
  // Route `route` (its position in the config) of listener `listener`; nullptr when out
  // of range. For what is built beside the table per route (the shared rate limiters).
  const RouteEntry* Entry(size_t listener, size_t route) const {
    if (listener >= listeners_.size() || route >= listeners_[listener].routes.size()) {
      return nullptr;
    }
    return &listeners_[listener].routes[route].entry;
  }

  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

 private:
  struct HeaderCondition {
    std::string name;
    enum Kind : uint8_t { kPresent, kAbsent, kExact, kPrefix, kRegex } kind = kPresent;
    std::string value;
    std::shared_ptr<const RE2> regex;
    bool invert = false;
  };
  struct CompiledRoute {
    bool exact_path = false;                // else prefix
    std::string path;                       // exact path or prefix
    std::shared_ptr<const RE2> path_regex;  // match.regex (then path is "")
    std::vector<std::string> methods;       // empty = any method
    std::vector<HostPattern> hosts;         // empty = any host (kept for introspection)
    std::vector<HeaderCondition> headers;
    std::vector<HeaderCondition> query_params;  // kPrefix unused
    RouteEntry entry;
  };
  // Positions (into CompiledListener::routes, ascending) of the routes naming one host key.
  struct HostBucket {
    std::string key;  // lowercased exact host, or wildcard suffix with its leading dot
    std::vector<uint32_t> routes;
  };
  // Host conditions are indexed so a lookup only visits routes that can match the host:
  // the any-host routes, the bucket for the exact host and the buckets for each of its
  // wildcard suffixes. Each list is in config order, so merging them in ascending
  // position keeps "first match wins" exactly as a linear scan would.
  struct CompiledListener {
    std::vector<CompiledRoute> routes;
    std::vector<uint32_t> any_host_routes;
    std::vector<HostBucket> exact_hosts;     // sorted by key
    std::vector<HostBucket> wildcard_hosts;  // sorted by key
  };

  static void IndexHosts(CompiledListener* listener);
  static const std::vector<uint32_t>* FindBucket(const std::vector<HostBucket>& buckets,
                                                 std::string_view key);
  static bool RequestMatches(const CompiledRoute& route, const RequestView& request);
  static bool ConditionHolds(const HeaderCondition& c, bool found, std::string_view value);

  RouteTable() = default;

  std::vector<CompiledListener> listeners_;
  size_t route_count_ = 0;
  size_t rate_limit_count_ = 0;
};

}  // namespace zproxy::routing
