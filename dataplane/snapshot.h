// The data plane's runtime view of one config version: everything a worker needs,
// resolved and validated once (addresses, limits, route table), immutable afterwards.
// The gRPC config stream (Admin API issue) produces these; today zproxyd's bootstrap
// message does.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/connect_allow.h"
#include "common/health_region.h"
#include "dataplane/http1/http1.h"
#include "dataplane/ratelimit/connection_limits.h"
#include "dataplane/ratelimit/rate_limits.h"
#include "dataplane/routing/route_table.h"
#include "dataplane/tunnel/sni_listener.h"
#include "dataplane/upstream/lb.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::tls {
class ClientContext;
class ServerContext;
class TicketKeyStore;
}  // namespace zproxy::tls

namespace zproxy::dataplane {

struct ClusterRuntime {
  std::string name;
  upstream::ClusterLbConfig lb;
  std::vector<std::string> endpoint_names;  // "host:port" as configured (Host fallback)
  uint32_t pool_size = 64;
  uint32_t connect_timeout_ms = 2000;
  uint32_t read_timeout_ms = 30000;
  uint32_t idle_timeout_ms = 60000;
  bool tcp_fast_open = false;
  bool http2 = false;  // protocol: http2 (one connection, many streams)
  // type original_destination: no endpoints; each exchange goes to its client's original
  // destination (Worker::ConnectOriginalDst), pooled per destination (pool_size idle
  // connections per destination and worker).
  bool original_destination = false;
  // Passive outlier detection (0 failures = disabled).
  uint32_t outlier_failures = 5;
  uint32_t outlier_base_ms = 10000;
  uint32_t outlier_max_ms = 300000;
  // One per endpoint: its byte in the shared health region (1 = healthy), or nullptr =
  // always healthy (no health_check, or no region). Workers hand these to
  // EndpointSet::SetHealthByte. The region outlives every snapshot (mapped once in main).
  std::vector<const uint8_t*> health;
  // HTTPS towards the endpoints (null = plaintext).
  std::shared_ptr<const tls::ClientContext> tls;
  // Header changes for every request to and response from this cluster (after the route's).
  routing::HeaderChanges request_headers;
  routing::HeaderChanges response_headers;
  // Retry budget (route retry policies): retries in flight at most this percentage of
  // the cluster's active requests, or min_retry_concurrency if that is more.
  uint32_t retry_budget_percent = 20;
  uint32_t min_retry_concurrency = 3;
};

// Listener.connect: where CONNECT may go and how its upstream connections behave. The
// upstream side is a cluster without endpoints (the target comes from each request), so
// CONNECT tunnels reuse the cluster machinery: connect timeout, errors, tunnels.
struct ConnectRuntime {
  std::vector<ConnectAllowRule> allow;
  ClusterRuntime upstream;  // name "connect:<listener>", connect_timeout_ms
  uint32_t idle_timeout_ms = 300000;
  // Host-name targets: how long the process's resolver cache answers for a name.
  uint32_t dns_cache_ms = 5000;
  uint32_t dns_negative_cache_ms = 1000;
};

struct ListenerRuntime {
  std::string name;
  http1::Limits limits;
  uint64_t max_body_bytes = 0;  // 0 = unlimited
  // HTTP/2 clients (h2c or ALPN h2): streams one connection may have open at once.
  uint32_t h2_max_concurrent_streams = 100;
  uint32_t idle_timeout_ms = 60000;
  uint32_t header_timeout_ms = 10000;
  bool add_forwarded_headers = true;
  // X-Request-Id: added when missing; with ignore_client, always a new one.
  bool request_id = true;
  bool request_id_ignore_client = false;
  // tcp_proxy listener: index of its cluster (-1 = HTTP listener), the pass-through mode
  // it asks for (resolved per connection against what the process has, PassthroughCaps).
  // idle_timeout_ms above is TcpProxy.idle_timeout_ms for these.
  int tcp_cluster = -1;
  // TLS listener: certificates, SNI, ALPN, tickets (null = plaintext).
  std::shared_ptr<const tls::ServerContext> tls;
  uint32_t handshake_timeout_ms = 10000;
  zproxy::v1::PassthroughMode pass_mode = zproxy::v1::AUTO;
  // tcp_proxy with sni_routes: the ClientHello picks the cluster (null = tcp_cluster).
  std::shared_ptr<const SniListener> sni;
  // HTTP listener: the mode WebSocket and CONNECT tunnels ask for (Listener.tunnel_mode).
  zproxy::v1::PassthroughMode tunnel_mode = zproxy::v1::AUTO;
  // HTTP CONNECT (null = refused with 403).
  std::shared_ptr<const ConnectRuntime> connect;
  // Open client connections at once over all workers (0 = no limit; Snapshot::connections).
  uint32_t max_connections = 0;
  // A route keys its rate limit by client address or puts ${client_address} in a header:
  // the address is needed (SO_PEERNAME) even without X-Forwarded-For or an access log.
  bool needs_client_address = false;
  // Listener.original_destination: each accepted connection's original destination is
  // recovered (dataplane/sidecar/original_dst.h); accepts give regular descriptors.
  bool original_destination = false;
};

struct Snapshot {
  uint64_t version = 0;
  // Counts every snapshot a data plane applies (ConfigApplier sets it), so a new snapshot
  // of the same config version (health region re-attached after adoption) is still told
  // apart by the workers; 0 for the one they start with.
  uint64_t generation = 0;
  zproxy::v1::Config config;
  std::vector<ListenerRuntime> listeners;  // same order as config.listeners
  std::vector<ClusterRuntime> clusters;    // same order as config.clusters
  std::shared_ptr<const routing::RouteTable> routes;
  uint32_t send_zc_threshold = 0;  // 0 = never
  // The mapping ClusterRuntime::health points into: held so it outlives every snapshot
  // (and every in-flight request) that reads it, even after a newer region replaced it.
  std::shared_ptr<const HealthRegion> health_region;
  // Route.rate_limit: the token buckets every worker shares, indexed by
  // RoutePolicy::rate_limit_index (unchanged routes keep theirs across snapshots).
  std::shared_ptr<const ratelimit::RateLimits> rate_limits;
  // Open client connections per listener (Listener.max_connections): the process's
  // counters, handed from each snapshot to the next since connections outlive snapshots.
  std::shared_ptr<ratelimit::ListenerConnections> connections;
};

// Builds a snapshot; on error returns nullptr with *error naming the field. With a health
// region and zproxyd's slot table, each endpoint that has a slot gets its health byte.
// TLS listeners load their certificates here; with a ticket key store, their session
// ticket keys carry over from earlier snapshots (tickets stay valid across changes).
// `previous` (the snapshot being replaced, if any) hands over the connection counters and
// the rate limiters of unchanged routes.
std::shared_ptr<Snapshot> BuildSnapshot(const zproxy::v1::Config& config, uint64_t version,
                                        std::string* error,
                                        std::shared_ptr<const HealthRegion> health_region = nullptr,
                                        const HealthSlotTable* health_slots = nullptr,
                                        tls::TicketKeyStore* ticket_keys = nullptr,
                                        const Snapshot* previous = nullptr);

}  // namespace zproxy::dataplane
