// GetHealth's answer, built from the config (every endpoint, its weight and draining, whether
// its cluster is checked) and the active checker's states. Pure: no locks, no I/O, so the
// merge is unit-tested on its own (health_report_test.cc).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "controlplane/health/endpoint_health.h"
#include "zproxy/v1/admin.pb.h"

namespace zproxy::admin {

// What DNS discovery knows of a host-name endpoint's host in a cluster (dns/discovery.h).
struct ResolvedName {
  std::vector<std::string> ips;  // literals, no port
  std::string state;             // "2 addresses, TTL 30 s, next lookup in 12 s", ...
};
using ResolvedNames =
    std::map<std::pair<std::string, std::string>, ResolvedName>;  // (cluster, host)

// Fills `out` (endpoints and per-cluster summaries, config order). A host-name endpoint
// found in `names` gives one row per address (`hostname` naming it, `dns` its state), or
// one unhealthy row with the name as address while it has none. `only_cluster` empty =
// every cluster; else that cluster only, and false with `*error` naming it when the config
// has no such cluster. `now` is the report's timestamp.
bool BuildHealthReport(const v1::Config& config, const std::vector<health::EndpointHealth>& states,
                       const std::string& only_cluster, std::chrono::system_clock::time_point now,
                       v1::HealthResponse* out, std::string* error,
                       const ResolvedNames* names = nullptr);

// "http GET /healthz", "https GET /healthz" (a TLS cluster), "tcp connect",
// "grpc Health/Check app.Svc" ("grpcs ..." over TLS; `""` for the server's overall health).
std::string CheckDescription(const v1::Cluster& cluster);

// Milliseconds since the Unix epoch; 0 for the zero time point ("never").
int64_t UnixMs(std::chrono::system_clock::time_point t);

}  // namespace zproxy::admin
