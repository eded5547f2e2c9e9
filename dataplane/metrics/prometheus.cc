#include "dataplane/metrics/prometheus.h"

#include <cstdio>

#include "dataplane/proxy/passthrough_mode.h"

namespace zproxy::dataplane {
namespace {

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void Family(const char* name, const char* type, const char* help) {
    *out_ += "# HELP ";
    *out_ += name;
    *out_ += " ";
    *out_ += help;
    *out_ += "\n# TYPE ";
    *out_ += name;
    *out_ += " ";
    *out_ += type;
    *out_ += "\n";
  }
  void Sample(const char* name, const std::string& labels, double value) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%.17g", value);
    *out_ += name;
    if (!labels.empty()) {
      *out_ += "{";
      *out_ += labels;
      *out_ += "}";
    }
    *out_ += " ";
    *out_ += buf;
    *out_ += "\n";
  }

 private:
  std::string* out_;
};

std::string W(size_t i) { return "worker=\"" + std::to_string(i) + "\""; }

// Label values: backslash, double quote and newline escaped (text format 0.0.4).
std::string LabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::string RenderPrometheus(const std::vector<const WorkerStats*>& workers,
                             const DataplaneInfo& info) {
  std::string out;
  out.reserve(16384);
  Writer w(&out);
  using Field = Counter WorkerStats::*;
  auto per_worker = [&](const char* name, const char* type, const char* help, Field f) {
    w.Family(name, type, help);
    for (size_t i = 0; i < workers.size(); i++) {
      w.Sample(name, W(i), static_cast<double>((workers[i]->*f).Load()));
    }
  };

  w.Family("zproxy_requests_total", "counter",
           "Responses sent to clients, by status class and worker.");
  static const char* kClasses[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
  for (size_t i = 0; i < workers.size(); i++) {
    for (int c = 1; c <= 5; c++) {
      w.Sample("zproxy_requests_total", W(i) + ",class=\"" + kClasses[c] + "\"",
               static_cast<double>(workers[i]->requests_by_class[c].Load()));
    }
  }
  per_worker("zproxy_accepts_total", "counter", "Client connections accepted.",
             &WorkerStats::accepts);
  w.Family("zproxy_connections_open", "gauge", "Open connections by side (client, upstream).");
  for (size_t i = 0; i < workers.size(); i++) {
    w.Sample("zproxy_connections_open", W(i) + ",side=\"client\"",
             static_cast<double>(workers[i]->client_open.Load()));
    w.Sample("zproxy_connections_open", W(i) + ",side=\"upstream\"",
             static_cast<double>(workers[i]->upstream_open.Load()));
  }
  w.Family("zproxy_connections_idle", "gauge",
           "Idle connections: client keep-alive without a request, pooled upstream.");
  for (size_t i = 0; i < workers.size(); i++) {
    w.Sample("zproxy_connections_idle", W(i) + ",side=\"client\"",
             static_cast<double>(workers[i]->client_idle.Load()));
    w.Sample("zproxy_connections_idle", W(i) + ",side=\"upstream\"",
             static_cast<double>(workers[i]->upstream_idle.Load()));
  }
  per_worker("zproxy_upstream_connects_total", "counter", "New upstream connections opened.",
             &WorkerStats::upstream_connects);
  per_worker("zproxy_upstream_reused_total", "counter",
             "Requests sent on a pooled keep-alive upstream connection.",
             &WorkerStats::upstream_reused);
  per_worker("zproxy_upstream_retries_total", "counter",
             "Requests retried on another endpoint or a fresh connection.",
             &WorkerStats::upstream_retries);
  w.Family("zproxy_route_retries_total", "counter",
           "Retries made by routes' retry policies, by what triggered them.");
  for (size_t i = 0; i < workers.size(); i++) {
    static constexpr const char* kTriggers[] = {"connect_failure", "reset", "status",
                                                "per_try_timeout"};
    for (int t = 0; t < 4; t++) {
      w.Sample("zproxy_route_retries_total", W(i) + ",reason=\"" + kTriggers[t] + "\"",
               static_cast<double>(workers[i]->route_retries[t].Load()));
    }
  }
  per_worker("zproxy_retry_budget_exhausted_total", "counter",
             "Retries a cluster's retry budget refused (too many retries in flight).",
             &WorkerStats::retry_budget_exhausted);
  per_worker("zproxy_upstream_ejections_total", "counter",
             "Endpoints ejected by passive outlier detection.", &WorkerStats::upstream_ejections);
  per_worker("zproxy_upstream_ejected", "gauge",
             "Endpoints currently ejected by this worker's outlier detection.",
             &WorkerStats::upstream_ejected);
  per_worker("zproxy_upstream_panic_total", "counter",
             "Endpoint picks made in panic mode (too few healthy endpoints: health ignored).",
             &WorkerStats::upstream_panic);
  w.Family("zproxy_upstream_reuse_ratio", "gauge",
           "Share of upstream requests served by a reused connection.");
  for (size_t i = 0; i < workers.size(); i++) {
    double reused = static_cast<double>(workers[i]->upstream_reused.Load());
    double fresh = static_cast<double>(workers[i]->upstream_connects.Load());
    w.Sample("zproxy_upstream_reuse_ratio", W(i),
             reused + fresh > 0 ? reused / (reused + fresh) : 0.0);
  }
  w.Family("zproxy_errors_total", "counter", "Requests that failed, by cause.");
  for (size_t i = 0; i < workers.size(); i++) {
    for (int c = 0; c < static_cast<int>(ErrorCause::kCount); c++) {
      w.Sample("zproxy_errors_total",
               W(i) + ",cause=\"" + ErrorCauseName(static_cast<ErrorCause>(c)) + "\"",
               static_cast<double>(workers[i]->errors[c].Load()));
    }
  }
  w.Family("zproxy_upstream_connect_errors_total", "counter",
           "Upstream connects the kernel failed (socket() or connect), by errno.");
  for (size_t i = 0; i < workers.size(); i++) {
    for (int e = 0; e < static_cast<int>(ConnectErrno::kCount); e++) {
      w.Sample("zproxy_upstream_connect_errors_total",
               W(i) + ",errno=\"" + ConnectErrnoName(static_cast<ConnectErrno>(e)) + "\"",
               static_cast<double>(workers[i]->upstream_connect_errors[e].Load()));
    }
  }
  w.Family("zproxy_parser_rejections_total", "counter",
           "Requests rejected by the HTTP/1.1 parser, by reason.");
  for (size_t i = 0; i < workers.size(); i++) {
    for (int e = 1; e < static_cast<int>(http1::Error::kCount); e++) {
      w.Sample("zproxy_parser_rejections_total",
               W(i) + ",reason=\"" + http1::ErrorName(static_cast<http1::Error>(e)) + "\"",
               static_cast<double>(workers[i]->parser_rejections[e].Load()));
    }
  }
  per_worker("zproxy_recv_enobufs_total", "counter",
             "Multishot receives re-armed after the provided buffer ring ran dry.",
             &WorkerStats::enobufs_rearms);
  per_worker("zproxy_send_zc_total", "counter", "Sends issued as IORING_OP_SEND_ZC.",
             &WorkerStats::send_zc);
  per_worker("zproxy_send_zc_bytes_total", "counter", "Bytes sent with IORING_OP_SEND_ZC.",
             &WorkerStats::send_zc_bytes);
  per_worker("zproxy_send_zc_fallbacks_total", "counter",
             "SEND_ZC completions refused by the kernel (ENOMEM, ENOBUFS, EOPNOTSUPP) whose "
             "bytes were sent again with a plain send.",
             &WorkerStats::send_zc_fallbacks);
  per_worker("zproxy_send_zc_disabled", "gauge",
             "1 once the worker stopped using SEND_ZC after repeated refusals.",
             &WorkerStats::send_zc_off);
  per_worker("zproxy_send_total", "counter", "Sends issued as plain send/sendmsg.",
             &WorkerStats::send_plain);
  per_worker("zproxy_client_bytes_received_total", "counter", "Bytes received from clients.",
             &WorkerStats::bytes_from_clients);
  per_worker("zproxy_client_bytes_sent_total", "counter", "Bytes sent to clients.",
             &WorkerStats::bytes_to_clients);
  per_worker("zproxy_tcp_proxy_connections_total", "counter",
             "Connections accepted on tcp_proxy (L4) listeners.",
             &WorkerStats::tcp_proxy_connections);
  per_worker("zproxy_tcp_proxy_bytes_total", "counter",
             "Bytes copied between tcp_proxy clients and upstreams (both directions).",
             &WorkerStats::tcp_proxy_bytes);
  w.Family("zproxy_passthrough_connections_total", "counter",
           "Tunnels (tcp_proxy connections, WebSocket after 101, CONNECT) by the "
           "pass-through mode they used.");
  for (int m = 0; m < kPassModeCount; m++) {
    uint64_t total = 0;
    for (const WorkerStats* s : workers) total += s->passthrough_mode[m].Load();
    w.Sample("zproxy_passthrough_connections_total",
             std::string("mode=\"") + PassModeName(static_cast<PassMode>(m)) + "\"",
             static_cast<double>(total));
  }
  per_worker("zproxy_passthrough_fallbacks_total", "counter",
             "Tunnels that could not use their listener's mode (reasons: "
             "zproxy_tunnel_fallbacks_total).",
             &WorkerStats::passthrough_fallbacks);
  w.Family("zproxy_tunnel_fallbacks_total", "counter",
           "Tunnels (tcp_proxy, WebSocket, CONNECT) that did not get their listener's mode, "
           "by reason.");
  for (int r = 0; r < static_cast<int>(TunnelFallback::kCount); r++) {
    uint64_t total = 0;
    for (const WorkerStats* s : workers) total += s->tunnel_fallbacks[r].Load();
    w.Sample("zproxy_tunnel_fallbacks_total",
             std::string("reason=\"") + TunnelFallbackName(static_cast<TunnelFallback>(r)) + "\"",
             static_cast<double>(total));
  }
  per_worker("zproxy_upgrades_total", "counter",
             "HTTP connections switched to a byte tunnel by 101 Switching Protocols "
             "(WebSocket).",
             &WorkerStats::websocket_upgrades);
  per_worker("zproxy_paused_receive_copies_total", "counter",
             "Receives that completed after backpressure paused the socket, copied out of "
             "the shared receive buffers.",
             &WorkerStats::paused_recv_copies);
  per_worker("zproxy_http2_connections_total", "counter",
             "Client connections that speak HTTP/2 (h2c prior knowledge or ALPN h2).",
             &WorkerStats::h2_connections);
  per_worker("zproxy_http2_streams_total", "counter", "HTTP/2 streams (requests) clients opened.",
             &WorkerStats::h2_streams);
  per_worker("zproxy_http2_refused_streams_total", "counter",
             "HTTP/2 requests answered 4xx before routing (oversized or incomplete heads).",
             &WorkerStats::h2_refused_streams);
  per_worker("zproxy_http2_connection_errors_total", "counter",
             "HTTP/2 client connections ended by a connection error (GOAWAY with an error).",
             &WorkerStats::h2_connection_errors);
  w.Family("zproxy_connect_requests_total", "counter",
           "HTTP CONNECT requests on HTTP listeners, by outcome.");
  for (size_t i = 0; i < workers.size(); i++) {
    for (int o = 0; o < static_cast<int>(ConnectOutcome::kCount); o++) {
      w.Sample("zproxy_connect_requests_total",
               W(i) + ",outcome=\"" + ConnectOutcomeName(static_cast<ConnectOutcome>(o)) + "\"",
               static_cast<double>(workers[i]->connect_requests[o].Load()));
    }
  }
  w.Family("zproxy_connect_dns_total", "counter",
           "CONNECTs to host names by how the name was resolved: cache_hit, "
           "negative_cache_hit, resolved, failed (by the resolver thread), queue_full, timeout.");
  for (size_t i = 0; i < workers.size(); i++) {
    for (int r = 0; r < static_cast<int>(ConnectDnsResult::kCount); r++) {
      w.Sample("zproxy_connect_dns_total",
               W(i) + ",result=\"" + ConnectDnsResultName(static_cast<ConnectDnsResult>(r)) + "\"",
               static_cast<double>(workers[i]->connect_dns[r].Load()));
    }
  }
  if (info.resolver != nullptr) {
    const dns::ResolverStats& rs = *info.resolver;
    w.Family("zproxy_dns_lookups_total", "counter",
             "getaddrinfo calls by the data plane's resolver thread, by result.");
    w.Sample("zproxy_dns_lookups_total", "result=\"ok\"",
             static_cast<double>(rs.lookups_ok.load()));
    w.Sample("zproxy_dns_lookups_total", "result=\"failed\"",
             static_cast<double>(rs.lookups_failed.load()));
    w.Family("zproxy_dns_coalesced_total", "counter",
             "Queued lookups answered by an earlier lookup of the same name.");
    w.Sample("zproxy_dns_coalesced_total", "", static_cast<double>(rs.coalesced.load()));
    w.Family("zproxy_dns_expired_total", "counter",
             "Queued lookups skipped because their CONNECT had timed out already.");
    w.Sample("zproxy_dns_expired_total", "", static_cast<double>(rs.expired.load()));
    w.Family("zproxy_dns_queue_depth", "gauge", "Names waiting for the resolver thread.");
    w.Sample("zproxy_dns_queue_depth", "", static_cast<double>(rs.queue_depth.load()));
    w.Family("zproxy_dns_cache_entries", "gauge", "Names in the resolver's cache.");
    w.Sample("zproxy_dns_cache_entries", "", static_cast<double>(rs.cache_entries.load()));
  }
  per_worker("zproxy_sockmap_stragglers_total", "counter",
             "Sockmap connections reset because bytes could not be kept in order: a pairing "
             "refused half-way after the kernel had moved bytes, or bytes found on a "
             "paired socket (expected 0).",
             &WorkerStats::sockmap_stragglers);
  if (info.has_splice_counters) {
    w.Family("zproxy_sockmap_spliced_bytes_total", "counter",
             "Bytes the sk_skb verdict program redirected between paired sockets (BPF "
             "per-CPU counters, all data planes sharing the pinned map).");
    w.Sample("zproxy_sockmap_spliced_bytes_total", "",
             static_cast<double>(info.splice_counters.spliced_bytes));
    w.Family("zproxy_sockmap_redirect_errors_total", "counter",
             "skbs the verdict program dropped: no peer socket in zproxy_pair_peer (a pair "
             "being torn down).");
    w.Sample(
        "zproxy_sockmap_redirect_errors_total", "",
        static_cast<double>(info.splice_counters.redirect_errors + info.splice_counters.no_peer));
  }
  w.Family("zproxy_original_destination_total", "counter",
           "Connections accepted by listeners with original_destination, by where their "
           "original destination came from (bpf_map, so_original_dst) or why there is none "
           "(not_redirected: dialled the listener itself, refused to avoid a loop; unknown).");
  for (size_t i = 0; i < workers.size(); i++) {
    for (int s = 0; s < static_cast<int>(sidecar::DstSource::kCount); s++) {
      w.Sample("zproxy_original_destination_total",
               W(i) + ",source=\"" + sidecar::DstSourceName(static_cast<sidecar::DstSource>(s)) +
                   "\"",
               static_cast<double>(workers[i]->original_dst[s].Load()));
    }
  }
  per_worker("zproxy_peername_failures_total", "counter",
             "Connections whose client address could not be read (no X-Forwarded-For).",
             &WorkerStats::peername_failures);

  w.Family("zproxy_tls_handshakes_total", "counter",
           "Completed TLS handshakes, full or resumed with a session ticket.");
  for (size_t i = 0; i < workers.size(); i++) {
    w.Sample("zproxy_tls_handshakes_total", W(i) + ",result=\"full\"",
             static_cast<double>(workers[i]->tls_handshakes[0].Load()));
    w.Sample("zproxy_tls_handshakes_total", W(i) + ",result=\"resumed\"",
             static_cast<double>(workers[i]->tls_handshakes[1].Load()));
  }
  w.Family("zproxy_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed, by reason; the connection was closed.");
  for (size_t i = 0; i < workers.size(); i++) {
    for (int r = 0; r < static_cast<int>(tls::HandshakeFailure::kCount); r++) {
      w.Sample("zproxy_tls_handshake_failures_total",
               W(i) + ",reason=\"" +
                   tls::HandshakeFailureName(static_cast<tls::HandshakeFailure>(r)) + "\"",
               static_cast<double>(workers[i]->tls_handshake_failures[r].Load()));
    }
  }
  w.Family("zproxy_tls_connections_total", "counter",
           "TLS connections after the handshake, by who encrypts: userspace (BoringSSL) or "
           "ktls (the kernel).");
  for (size_t i = 0; i < workers.size(); i++) {
    for (int m = 0; m < static_cast<int>(tls::TlsMode::kCount); m++) {
      w.Sample("zproxy_tls_connections_total",
               W(i) + ",mode=\"" + tls::TlsModeName(static_cast<tls::TlsMode>(m)) + "\"",
               static_cast<double>(workers[i]->tls_connections[m].Load()));
    }
  }
  w.Family("zproxy_tls_offload_total", "counter",
           "kTLS after the handshake, by outcome (installed, or why the connection stayed in "
           "userspace: no_kernel_support, pending_data, unsupported_cipher, ...).");
  for (size_t i = 0; i < workers.size(); i++) {
    for (int o = 0; o < static_cast<int>(tls::OffloadOutcome::kCount); o++) {
      w.Sample("zproxy_tls_offload_total",
               W(i) + ",outcome=\"" + tls::OffloadOutcomeName(static_cast<tls::OffloadOutcome>(o)) +
                   "\"",
               static_cast<double>(workers[i]->tls_offload[o].Load()));
    }
  }
  per_worker("zproxy_tls_errors_total", "counter",
             "TLS connections closed on a fatal error after the handshake.",
             &WorkerStats::tls_errors);

  w.Family("zproxy_dataplane_info", "gauge",
           "Active kernel paths and fallbacks (value is always 1).");
  std::string labels = "simd=\"" + info.simd_level + "\"";
  labels += std::string(",single_issuer=\"") + (info.single_issuer ? "1" : "0") + "\"";
  labels += std::string(",defer_taskrun=\"") + (info.defer_taskrun ? "1" : "0") + "\"";
  labels += std::string(",sqpoll=\"") + (info.sqpoll ? "1" : "0") + "\"";
  // "off_after_errors": the kernel has SEND_ZC but a worker stopped using it (refusals).
  bool zc_off = false;
  for (const WorkerStats* ws : workers) zc_off |= ws->send_zc_off.Load() != 0;
  labels += std::string(",send_zc=\"") +
            (!info.send_zc ? "0"
             : zc_off      ? "off_after_errors"
                           : "1") +
            "\"";
  labels += std::string(",registered_files=\"") + (info.registered_files ? "1" : "0") + "\"";
  labels += ",health_region=\"" + info.health_region + "\"";
  labels += std::string(",ktls=\"") + (info.ktls ? "1" : "0") + "\"";
  labels += std::string(",sockmap=\"") + (info.sockmap ? "1" : "0") + "\"";
  labels += std::string(",splice=\"") + (info.splice ? "1" : "0") + "\"";
  labels += std::string(",passthrough_auto=\"") + info.passthrough_auto + "\"";
  labels += std::string(",fd_install=\"") + (info.fd_install ? "1" : "0") + "\"";
  labels += ",privileges=\"" + info.privileges + "\"";
  w.Sample("zproxy_dataplane_info", labels, 1);
  w.Family("zproxy_listener_passthrough_mode", "gauge",
           "The pass-through mode each tcp_proxy listener uses (value is always 1).");
  for (const auto& l : info.passthrough_listeners) {
    w.Sample("zproxy_listener_passthrough_mode",
             "listener=\"" + LabelValue(l.listener) + "\",requested=\"" + l.requested +
                 "\",mode=\"" + l.mode + "\"",
             1);
  }
  w.Family("zproxy_listener_tunnel_mode", "gauge",
           "The mode WebSocket and CONNECT tunnels of each HTTP listener use (value is always "
           "1; per tunnel, TLS on either side still means copy).");
  for (const auto& l : info.tunnel_listeners) {
    w.Sample("zproxy_listener_tunnel_mode",
             "listener=\"" + LabelValue(l.listener) + "\",requested=\"" + l.requested +
                 "\",mode=\"" + l.mode + "\"",
             1);
  }
  w.Family("zproxy_upstream_healthy", "gauge",
           "1 if the endpoint is eligible for traffic per the active health checks, else 0 "
           "(1 for endpoints without a health_check).");
  for (const auto& h : info.upstream_health) {
    const bool healthy = h.byte == nullptr || __atomic_load_n(h.byte, __ATOMIC_RELAXED) != 0;
    w.Sample(
        "zproxy_upstream_healthy",
        "cluster=\"" + LabelValue(h.cluster) + "\",endpoint=\"" + LabelValue(h.endpoint) + "\"",
        healthy ? 1 : 0);
  }
  w.Family("zproxy_listener_connections_open", "gauge",
           "Open client connections per listener, over all workers (Listener.max_connections).");
  for (const auto& l : info.listener_connections) {
    w.Sample("zproxy_listener_connections_open", "listener=\"" + LabelValue(l.listener) + "\"",
             static_cast<double>(l.open));
  }
  w.Family("zproxy_listener_connections_refused_total", "counter",
           "Client connections closed right after accept: the listener had max_connections "
           "open.");
  for (const auto& l : info.listener_connections) {
    w.Sample("zproxy_listener_connections_refused_total",
             "listener=\"" + LabelValue(l.listener) + "\"", static_cast<double>(l.refused));
  }
  w.Family("zproxy_rate_limited_total", "counter",
           "Requests answered 429 by a route's rate limit (Route.rate_limit).");
  for (const auto& r : info.rate_limited_routes) {
    w.Sample("zproxy_rate_limited_total",
             "listener=\"" + LabelValue(r.listener) + "\",route=\"" + LabelValue(r.route) + "\"",
             static_cast<double>(r.limited));
  }
  w.Family("zproxy_rate_limit_collisions_total", "counter",
           "Keyed rate limits: requests whose key had to share another key's bucket (all eight of "
           "its candidate slots in the route's table held keys still refilling).");
  for (const auto& r : info.rate_limited_routes) {
    w.Sample("zproxy_rate_limit_collisions_total",
             "listener=\"" + LabelValue(r.listener) + "\",route=\"" + LabelValue(r.route) + "\"",
             static_cast<double>(r.collisions));
  }
  w.Family("zproxy_tcp_sni_routed_total", "counter",
           "tcp_proxy connections routed by their ClientHello (sni_routes), by listener and "
           "cluster (the default cluster included).");
  for (const auto& s : info.sni_routed) {
    w.Sample("zproxy_tcp_sni_routed_total",
             "listener=\"" + LabelValue(s.listener) + "\",cluster=\"" + LabelValue(s.label) + "\"",
             static_cast<double>(s.value));
  }
  w.Family("zproxy_tcp_client_hello_failures_total", "counter",
           "tcp_proxy connections with sni_routes closed without a ClientHello: none in time "
           "(timeout), not one (malformed), or the client left first (closed).");
  for (const auto& s : info.client_hello_failures) {
    w.Sample("zproxy_tcp_client_hello_failures_total",
             "listener=\"" + LabelValue(s.listener) + "\",reason=\"" + s.label + "\"",
             static_cast<double>(s.value));
  }
  w.Family("zproxy_config_version", "gauge", "Version of the config snapshot in use.");
  w.Sample("zproxy_config_version", "", static_cast<double>(info.config_version));
  w.Family("zproxy_workers", "gauge", "Number of data plane workers.");
  w.Sample("zproxy_workers", "", static_cast<double>(workers.size()));
  return out;
}

}  // namespace zproxy::dataplane
