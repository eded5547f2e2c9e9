#include "dataplane/snapshot.h"

#include <algorithm>

#include "dataplane/tls/client_context.h"
#include "dataplane/tls/server_context.h"

namespace zproxy::dataplane {
namespace {
template <typename T>
T OrDefault(T value, T fallback) {
  return value != 0 ? value : fallback;
}
}  // namespace

namespace {

bool ChangesUseClientAddress(const routing::HeaderChanges& c) {
  for (const auto* ops : {&c.set, &c.add}) {
    for (const routing::HeaderOp& op : *ops) {
      if (op.value.find("${client_address}") != std::string::npos) return true;
    }
  }
  return false;
}

// A route that keys its rate limit by client address, or puts ${client_address} in a
// header (its own changes or its cluster's): the listener must learn each client's address
// even when X-Forwarded-For and the access log do not need it.
bool RouteUsesClientAddress(const routing::RouteEntry& e, const Snapshot& snap) {
  const routing::RoutePolicy* p = e.policy.get();
  if (p != nullptr) {
    if (p->has_rate_limit && p->rate_limit.key == route_policy::RateKeyKind::kClientAddress) {
      return true;
    }
    if (ChangesUseClientAddress(p->request_headers) ||
        ChangesUseClientAddress(p->response_headers)) {
      return true;
    }
  }
  if (e.action() != routing::RouteAction::kForward || e.cluster_index >= snap.clusters.size()) {
    return false;
  }
  const ClusterRuntime& c = snap.clusters[e.cluster_index];
  return ChangesUseClientAddress(c.request_headers) || ChangesUseClientAddress(c.response_headers);
}

}  // namespace

std::shared_ptr<Snapshot> BuildSnapshot(const zproxy::v1::Config& config, uint64_t version,
                                        std::string* error,
                                        std::shared_ptr<const HealthRegion> health_region,
                                        const HealthSlotTable* health_slots,
                                        tls::TicketKeyStore* ticket_keys,
                                        const Snapshot* previous) {
  if (health_region != nullptr && !health_region->valid()) health_region = nullptr;
  auto snap = std::make_shared<Snapshot>();
  snap->version = version;
  snap->config = config;
  snap->send_zc_threshold =
      config.io_uring().send_zc_disable() ? 0 : config.io_uring().send_zc_threshold();
  for (const auto& l : config.listeners()) {
    ListenerRuntime lr;
    lr.name = l.name();
    const auto& h = l.http();
    lr.limits.max_request_line_bytes = OrDefault(h.max_request_line_bytes(), 8192u);
    lr.limits.max_header_bytes = OrDefault(h.max_header_bytes(), 65536u);
    lr.limits.max_headers = std::min(OrDefault(h.max_headers(), 100u), 128u);
    lr.max_body_bytes = h.max_body_bytes();
    lr.h2_max_concurrent_streams = OrDefault(h.http2_max_concurrent_streams(), 100u);
    lr.idle_timeout_ms = OrDefault(h.idle_timeout_ms(), 60000u);
    lr.header_timeout_ms = OrDefault(h.request_header_timeout_ms(), 10000u);
    lr.add_forwarded_headers = !h.xff_disable();
    lr.request_id = !h.request_id_disable();
    lr.request_id_ignore_client = h.request_id_ignore_client();
    lr.tunnel_mode = l.tunnel_mode();
    lr.max_connections = l.max_connections();
    lr.original_destination = l.original_destination();
    if (l.has_tcp_proxy()) {
      lr.pass_mode = l.tcp_proxy().mode();
      lr.idle_timeout_ms = OrDefault(l.tcp_proxy().idle_timeout_ms(), 60000u);
      for (int c = 0; c < config.clusters_size(); c++) {
        if (config.clusters(c).name() == l.tcp_proxy().cluster()) lr.tcp_cluster = c;
      }
      if (lr.tcp_cluster < 0) {
        *error = "listeners[" + std::to_string(snap->listeners.size()) +
                 "].tcp_proxy.cluster: " + "unknown cluster \"" + l.tcp_proxy().cluster() + "\"";
        return nullptr;
      }
      std::string sni_err;
      lr.sni = BuildSniListener(
          config, l, "listeners[" + std::to_string(snap->listeners.size()) + "]", &sni_err);
      if (!sni_err.empty()) {
        *error = sni_err;
        return nullptr;
      }
    }
    if (l.has_connect()) {
      auto cr = std::make_shared<ConnectRuntime>();
      for (int k = 0; k < l.connect().allow_size(); k++) {
        ConnectAllowRule rule;
        std::string err;
        if (!ParseConnectAllowRule(l.connect().allow(k), &rule, &err)) {
          *error = "listeners[" + std::to_string(snap->listeners.size()) + "].connect.allow[" +
                   std::to_string(k) + "]: " + err;
          return nullptr;
        }
        cr->allow.push_back(std::move(rule));
      }
      cr->upstream.name = "connect:" + l.name();
      cr->upstream.connect_timeout_ms = OrDefault(l.connect().connect_timeout_ms(), 5000u);
      cr->upstream.pool_size = 0;         // tunnels never return to a pool
      cr->upstream.outlier_failures = 0;  // targets are not endpoints
      cr->idle_timeout_ms = OrDefault(l.connect().idle_timeout_ms(), 300000u);
      // A CONNECT over HTTP/2 carries its tunnel as a stream (no tunnel object): the
      // target's silence ends it after the tunnels' idle timeout.
      cr->upstream.read_timeout_ms = cr->idle_timeout_ms;
      cr->dns_cache_ms = OrDefault(l.connect().dns_cache_ms(), 5000u);
      cr->dns_negative_cache_ms = OrDefault(l.connect().dns_negative_cache_ms(), 1000u);
      lr.connect = std::move(cr);
    }
    if (l.has_tls()) {
      std::shared_ptr<tls::TicketKeys> keys;
      if (ticket_keys != nullptr && !l.tls().session_tickets_disable()) {
        keys = ticket_keys->For(l.name(), l.tls().session_ticket_rotation_s());
      }
      std::string err;
      auto ctx = tls::ServerContext::Create(l.tls(), std::move(keys), &err);
      if (ctx == nullptr) {
        *error = "listeners[" + std::to_string(snap->listeners.size()) + "].tls." + err;
        return nullptr;
      }
      lr.handshake_timeout_ms = ctx->handshake_timeout_ms();
      lr.tls = std::move(ctx);
    }
    snap->listeners.push_back(std::move(lr));
  }
  for (int i = 0; i < config.clusters_size(); i++) {
    const auto& c = config.clusters(i);
    ClusterRuntime cr;
    cr.name = c.name();
    std::string err;
    if (!upstream::BuildClusterLbConfig(c, &cr.lb, &err)) {
      *error = "clusters[" + std::to_string(i) + "]." + err;
      return nullptr;
    }
    for (const auto& e : c.endpoints()) {
      cr.endpoint_names.push_back(e.address());
      const uint8_t* health = nullptr;
      if (health_region != nullptr && health_slots != nullptr) {
        if (auto slot = health_slots->SlotFor(c.name(), e.address())) {
          health = health_region->Byte(*slot);
        }
      }
      cr.health.push_back(health);
    }
    cr.pool_size = OrDefault(c.pool_size(), 64u);
    cr.connect_timeout_ms = OrDefault(c.connect_timeout_ms(), 2000u);
    cr.read_timeout_ms = OrDefault(c.read_timeout_ms(), 30000u);
    cr.idle_timeout_ms = OrDefault(c.idle_timeout_ms(), 60000u);
    cr.tcp_fast_open = c.tcp_fast_open();
    cr.request_headers = routing::HeaderChanges::Compile(c.request_headers());
    cr.response_headers = routing::HeaderChanges::Compile(c.response_headers());
    cr.retry_budget_percent = c.retry_budget_percent() != 0 ? c.retry_budget_percent() : 20;
    cr.min_retry_concurrency = c.min_retry_concurrency() != 0 ? c.min_retry_concurrency() : 3;
    cr.http2 = c.protocol() == zproxy::v1::HTTP2;
    cr.original_destination = c.type() == zproxy::v1::CLUSTER_TYPE_ORIGINAL_DESTINATION;
    if (c.has_tls()) {
      std::string tls_err;
      auto ctx = tls::ClientContext::Create(c.tls(), &tls_err, c.protocol() == zproxy::v1::HTTP2);
      if (ctx == nullptr) {
        *error = "clusters[" + std::to_string(i) + "].tls." + tls_err;
        return nullptr;
      }
      cr.tls = std::move(ctx);
    }
    const auto& od = c.outlier_detection();
    cr.outlier_failures = od.disable() ? 0 : OrDefault(od.consecutive_failures(), 5u);
    cr.outlier_base_ms = OrDefault(od.base_ejection_ms(), 10000u);
    cr.outlier_max_ms = std::max(cr.outlier_base_ms, OrDefault(od.max_ejection_ms(), 300000u));
    snap->clusters.push_back(std::move(cr));
  }
  snap->health_region = std::move(health_region);
  std::string err;
  snap->routes = routing::RouteTable::Build(config, &err);
  if (snap->routes == nullptr) {
    *error = err;
    return nullptr;
  }
  snap->rate_limits = ratelimit::RateLimits::Build(
      config, *snap->routes, previous != nullptr ? previous->rate_limits.get() : nullptr);
  for (size_t li = 0; li < snap->listeners.size(); li++) {
    for (int ri = 0; ri < config.listeners(static_cast<int>(li)).routes_size(); ri++) {
      const routing::RouteEntry* e = snap->routes->Entry(li, static_cast<size_t>(ri));
      if (e != nullptr && RouteUsesClientAddress(*e, *snap)) {
        snap->listeners[li].needs_client_address = true;
      }
    }
  }
  if (previous != nullptr && previous->connections != nullptr &&
      previous->connections->size() == snap->listeners.size()) {
    snap->connections = previous->connections;
  } else {
    snap->connections = std::make_shared<ratelimit::ListenerConnections>(snap->listeners.size());
  }
  return snap;
}

}  // namespace zproxy::dataplane
