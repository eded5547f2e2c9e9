// The Admin API's edits as pure functions on a Config (no gRPC, no I/O), so they are unit
// tested directly. Each edit works on a candidate copy; the caller validates the whole
// result with CheckCandidate and only then makes it current (all or nothing).
#pragma once

#include <cstdint>
#include <string>

#include "controlplane/config/config_error.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::state {

// A gRPC-independent status; admin/ maps the codes onto grpc::StatusCode.
struct OpStatus {
  enum Code { kOk, kInvalidArgument, kNotFound, kFailedPrecondition, kUnavailable, kInternal };
  Code code = kOk;
  std::string message;

  bool ok() const { return code == kOk; }
  static OpStatus Ok() { return {}; }
  static OpStatus Error(Code code, std::string message) { return {code, std::move(message)}; }
};

// Replaces the route of `listener` with the same name (route.name set) or the same match,
// else inserts it before the first route whose path match covers it, else appends.
OpStatus UpsertRoute(zproxy::v1::Config* config, const std::string& listener,
                     const zproxy::v1::Route& route);

// Deletes the route found by `name` (if non-empty) or by an identical `match`.
OpStatus DeleteRoute(zproxy::v1::Config* config, const std::string& listener,
                     const std::string& name, const zproxy::v1::RouteMatch& match);

// Replaces the cluster with the same name or appends it; applies the cluster defaults.
OpStatus UpsertCluster(zproxy::v1::Config* config, zproxy::v1::Cluster cluster);

// FAILED_PRECONDITION naming every route / tcp_proxy that still uses the cluster.
OpStatus DeleteCluster(zproxy::v1::Config* config, const std::string& name);

OpStatus SetEndpointWeight(zproxy::v1::Config* config, const std::string& cluster,
                           const std::string& address, uint32_t weight);

OpStatus DrainEndpoint(zproxy::v1::Config* config, const std::string& cluster,
                       const std::string& address, bool undrain);

// Validates `candidate` (defaults already applied) as a replacement for `current`:
// ValidateConfig, route names unique per listener, every cluster keeps an endpoint that is
// not draining, and fields that need a zproxyd restart unchanged. INVALID_ARGUMENT with
// one "field.path: reason" per line.
OpStatus CheckCandidate(const zproxy::v1::Config& current, const zproxy::v1::Config& candidate);

// The same checks, as a list (for the Validate dry run).
config::ConfigErrors CandidateErrors(const zproxy::v1::Config& current,
                                     const zproxy::v1::Config& candidate);

// What the data plane is given: the config without draining endpoints, with the contents
// of its TLS files inlined (the data plane opens no files after its privilege drop), and
// its private metrics address (dataplane_metrics.h) instead of metrics_address.
zproxy::v1::Config DataplaneView(const zproxy::v1::Config& config);

}  // namespace zproxy::state
