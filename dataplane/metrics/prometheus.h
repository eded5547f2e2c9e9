// Renders the data plane's counters in the Prometheus text exposition format (0.0.4).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bpf/zproxy_structs.h"
#include "dataplane/dns/resolver.h"
#include "dataplane/metrics/worker_stats.h"

namespace zproxy::dataplane {

struct DataplaneInfo {
  std::string simd_level;  // parser SIMD path
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool sqpoll = false;
  bool send_zc = false;
  bool registered_files = false;
  bool ktls = false;             // the kernel can take TLS over after the handshake
  bool sockmap = false;          // SOCKHASH fds from zproxyd
  bool splice = false;           // io_uring splice
  std::string passthrough_auto;  // what `auto` resolves to here
  bool has_splice_counters = false;
  zproxy_splice_counters splice_counters{};  // read at the scrape
  struct PassthroughListener {
    std::string listener, requested, mode;
  };
  std::vector<PassthroughListener> passthrough_listeners;
  // HTTP listeners: the mode of their WebSocket/CONNECT tunnels (Listener.tunnel_mode).
  std::vector<PassthroughListener> tunnel_listeners;
  bool fd_install = false;  // IORING_OP_FIXED_FD_INSTALL (direct descriptors -> regular fds)
  uint64_t config_version = 0;
  std::string health_region = "none";  // where health verdicts come from: bpf_map, memfd
  std::string privileges = "kept";     // "dropped" after bootstrap (dataplane/privileges)
  // The process's resolver (CONNECT to host names); nullptr = none.
  const dns::ResolverStats* resolver = nullptr;

  // zproxy_upstream_healthy{cluster,endpoint}: read live at every scrape, so each
  // transition the health checker writes into the shared region shows up.
  struct UpstreamHealth {
    std::string cluster;
    std::string endpoint;           // address as configured
    const uint8_t* byte = nullptr;  // health region byte; nullptr = not checked (always 1)
  };
  std::vector<UpstreamHealth> upstream_health;

  // Listener.max_connections: open client connections over all workers, and connections
  // closed right after accept for being over the limit (every listener).
  struct ListenerConnections {
    std::string listener;
    int64_t open = 0;
    uint64_t refused = 0;
  };
  std::vector<ListenerConnections> listener_connections;
  // Route.rate_limit, per rate-limited route: requests answered 429, and keyed requests
  // that had to share a bucket with another key (the route's table was busy).
  struct RateLimitedRoute {
    std::string listener;
    std::string route;  // its name, or routes[N]
    uint64_t limited = 0;
    uint64_t collisions = 0;
  };
  std::vector<RateLimitedRoute> rate_limited_routes;
  // tcp_proxy listeners with sni_routes (dataplane/metrics/sni_counters.h): connections per
  // (listener, cluster), ClientHello refusals per (listener, reason).
  struct ListenerCount {
    std::string listener, label;
    uint64_t value = 0;
  };
  std::vector<ListenerCount> sni_routed;
  std::vector<ListenerCount> client_hello_failures;
};

std::string RenderPrometheus(const std::vector<const WorkerStats*>& workers,
                             const DataplaneInfo& info);

}  // namespace zproxy::dataplane
