// The rules of route policy (docs/route-policy.md): what a route's redirect, direct
// response, rewrites, header changes, retries and rate limit may say. One implementation
// for zproxyd's validation (errors name the field, the config is refused) and the data
// plane's compilation of a snapshot (which refuses the same things), so the two can never
// disagree about what is valid.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "zproxy/v1/config.pb.h"

namespace zproxy::route_policy {

struct PolicyError {
  std::string path;     // "listeners[0].routes[2].redirect.code"
  std::string message;  // "must be 301, 302, 303, 307 or 308, got 200"
};
using PolicyErrors = std::vector<PolicyError>;

// retry_on, parsed.
enum RetryOnBit : uint32_t {
  kRetryConnectFailure = 1u << 0,  // the connect failed or timed out
  kRetryReset = 1u << 1,           // closed or reset before any byte of the answer
  kRetry5xx = 1u << 2,             // any 5xx answer (and connect failures, resets)
  kRetryGatewayError = 1u << 3,    // 502, 503, 504 (and connect failures, resets)
  kRetryPerTryTimeout = 1u << 4,   // a try passed per_try_timeout_ms
};
struct RetryConditions {
  uint32_t bits = 0;
  std::vector<uint16_t> statuses;  // retriable status codes given by number
  bool RetriesStatus(uint16_t status) const;
};
bool ParseRetryOn(const google::protobuf::RepeatedPtrField<std::string>& retry_on,
                  RetryConditions* out, std::string* why);

enum class RateKeyKind : uint8_t { kNone, kClientAddress, kHeader };
// "" / "none", "client_address", "header:<name>".
bool ParseRateLimitKey(const std::string& key, RateKeyKind* kind, std::string* header,
                       std::string* why);

// Fields header changes may not touch: hop-by-hop and framing fields, Host (host_rewrite
// says it), and HTTP/2 pseudo-fields.
bool IsProtectedField(std::string_view name);
// RFC 9110 token / field-value (no CR, LF, NUL).
bool IsFieldName(std::string_view name);
bool IsFieldValue(std::string_view value);

// Variables header values may use.
enum class Variable : uint8_t {
  kClientAddress,
  kRequestId,
  kListener,
  kTlsVersion,
  kTlsSni,
};
// "client_address" -> kClientAddress; false for an unknown name.
bool VariableByName(std::string_view name, Variable* out);
// Checks every ${name} of `value`; false with *why naming the first bad one.
bool CheckVariables(std::string_view value, std::string* why);

// The policy parts of a route (not whether its cluster exists: the caller knows the
// clusters). `path` is the route's own path, e.g. "listeners[0].routes[2]".
void CheckRoute(const zproxy::v1::Route& route, const std::string& path, PolicyErrors* errors);
void CheckHeaderChanges(const zproxy::v1::HeaderChanges& changes, const std::string& path,
                        PolicyErrors* errors);
// A cluster's header changes and retry budget.
void CheckClusterPolicy(const zproxy::v1::Cluster& cluster, const std::string& path,
                        PolicyErrors* errors);

// Whether a route forwards to a cluster (else zproxy answers it: redirect, direct response).
bool Forwards(const zproxy::v1::Route& route);

}  // namespace zproxy::route_policy
