#include "controlplane/config/defaults.h"

namespace zproxy::config {
void ApplyDefaults(zproxy::v1::IoUring* u) {
  if (u->sq_depth() == 0) u->set_sq_depth(Defaults::kSqDepth);
  if (u->buf_count() == 0) u->set_buf_count(Defaults::kBufCount);
  if (u->buf_size() == 0) u->set_buf_size(Defaults::kBufSize);
  if (u->send_zc_threshold() == 0) u->set_send_zc_threshold(Defaults::kSendZcThreshold);
  if (u->sqpoll_idle_ms() == 0) u->set_sqpoll_idle_ms(Defaults::kSqpollIdleMs);
}

void ApplyDefaults(zproxy::v1::HttpOptions* h) {
  if (h->max_request_line_bytes() == 0)
    h->set_max_request_line_bytes(Defaults::kMaxRequestLineBytes);
  if (h->max_header_bytes() == 0) h->set_max_header_bytes(Defaults::kMaxHeaderBytes);
  if (h->max_headers() == 0) h->set_max_headers(Defaults::kMaxHeaders);
  if (h->idle_timeout_ms() == 0) h->set_idle_timeout_ms(Defaults::kHttpIdleTimeoutMs);
  if (h->http2_max_concurrent_streams() == 0) {
    h->set_http2_max_concurrent_streams(Defaults::kHttp2MaxConcurrentStreams);
  }
  if (h->request_header_timeout_ms() == 0) {
    h->set_request_header_timeout_ms(Defaults::kRequestHeaderTimeoutMs);
  }
}

void ApplyDefaults(zproxy::v1::ListenerTls* t) {
  if (t->min_version().empty()) t->set_min_version(Defaults::kTlsMinVersion);
  if (t->alpn_size() == 0) {
    for (const char* p : Defaults::kTlsAlpn) t->add_alpn(p);
  }
  if (t->session_ticket_rotation_s() == 0) {
    t->set_session_ticket_rotation_s(Defaults::kTlsTicketRotationS);
  }
  if (t->handshake_timeout_ms() == 0) t->set_handshake_timeout_ms(Defaults::kTlsHandshakeTimeoutMs);
}

void ApplyDefaults(zproxy::v1::TcpProxy* t) {
  if (t->mode() == zproxy::v1::PASSTHROUGH_MODE_UNSPECIFIED)
    t->set_mode(Defaults::kPassthroughMode);
  if (t->idle_timeout_ms() == 0) t->set_idle_timeout_ms(Defaults::kTcpProxyIdleTimeoutMs);
  if (t->sni_routes_size() > 0 && t->client_hello_timeout_ms() == 0) {
    t->set_client_hello_timeout_ms(Defaults::kClientHelloTimeoutMs);
  }
}

void ApplyDefaults(zproxy::v1::ConnectProxy* c) {
  if (c->connect_timeout_ms() == 0) c->set_connect_timeout_ms(Defaults::kConnectProxyTimeoutMs);
  if (c->idle_timeout_ms() == 0) c->set_idle_timeout_ms(Defaults::kConnectIdleTimeoutMs);
  if (c->dns_cache_ms() == 0) c->set_dns_cache_ms(Defaults::kConnectDnsCacheMs);
  if (c->dns_negative_cache_ms() == 0) {
    c->set_dns_negative_cache_ms(Defaults::kConnectDnsNegativeCacheMs);
  }
}

void ApplyDefaults(zproxy::v1::ClusterTls* t) {
  if (!t->has_verify()) t->set_verify(true);
  if (t->min_version().empty()) t->set_min_version(Defaults::kTlsMinVersion);
}

void ApplyDefaults(zproxy::v1::Listener* l) {
  // HTTP options mean nothing to an L4 pass-through listener; leave it without them.
  if (l->has_tcp_proxy()) {
    ApplyDefaults(l->mutable_tcp_proxy());
  } else {
    ApplyDefaults(l->mutable_http());
    if (l->tunnel_mode() == zproxy::v1::PASSTHROUGH_MODE_UNSPECIFIED) {
      l->set_tunnel_mode(Defaults::kTunnelMode);
    }
  }
  // No tls block = plaintext; do not invent one.
  if (l->has_tls()) ApplyDefaults(l->mutable_tls());
  // No connect block = CONNECT refused; do not invent one either.
  if (l->has_connect()) ApplyDefaults(l->mutable_connect());
}

void ApplyDefaults(zproxy::v1::Endpoint* e) {
  if (e->weight() == 0) e->set_weight(Defaults::kEndpointWeight);
}

void ApplyDefaults(zproxy::v1::HealthCheck* hc) {
  if (hc->interval_ms() == 0) hc->set_interval_ms(Defaults::kHealthIntervalMs);
  if (hc->timeout_ms() == 0) hc->set_timeout_ms(Defaults::kHealthTimeoutMs);
  if (hc->healthy_threshold() == 0) hc->set_healthy_threshold(Defaults::kHealthyThreshold);
  if (hc->unhealthy_threshold() == 0) hc->set_unhealthy_threshold(Defaults::kUnhealthyThreshold);
}

void ApplyDefaults(zproxy::v1::Cluster* c) {
  if (c->lb() == zproxy::v1::LB_POLICY_UNSPECIFIED) c->set_lb(Defaults::kLbPolicy);
  if (c->pool_size() == 0) c->set_pool_size(Defaults::kPoolSize);
  if (c->connect_timeout_ms() == 0) c->set_connect_timeout_ms(Defaults::kConnectTimeoutMs);
  if (c->read_timeout_ms() == 0) c->set_read_timeout_ms(Defaults::kReadTimeoutMs);
  if (c->idle_timeout_ms() == 0) c->set_idle_timeout_ms(Defaults::kClusterIdleTimeoutMs);
  for (auto& e : *c->mutable_endpoints()) ApplyDefaults(&e);
  auto* od = c->mutable_outlier_detection();
  if (od->consecutive_failures() == 0) od->set_consecutive_failures(Defaults::kOutlierFailures);
  if (od->base_ejection_ms() == 0) od->set_base_ejection_ms(Defaults::kOutlierBaseEjectionMs);
  if (od->max_ejection_ms() == 0) od->set_max_ejection_ms(Defaults::kOutlierMaxEjectionMs);
  // No health_check block = no active checks; do not invent one.
  if (c->has_health_check()) ApplyDefaults(c->mutable_health_check());
  if (c->has_tls()) ApplyDefaults(c->mutable_tls());
}

void ApplyDefaults(zproxy::v1::Config* config) {
  ApplyDefaults(config->mutable_io_uring());
  for (auto& l : *config->mutable_listeners()) ApplyDefaults(&l);
  for (auto& c : *config->mutable_clusters()) ApplyDefaults(&c);
  if (config->drain_timeout_ms() == 0) config->set_drain_timeout_ms(Defaults::kDrainTimeoutMs);
  if (config->admin_address().empty()) config->set_admin_address(Defaults::kAdminAddress);
  if (config->bpffs_path().empty()) config->set_bpffs_path(Defaults::kBpffsPath);
  if (config->bpf().steering() == zproxy::v1::STEERING_POLICY_UNSPECIFIED) {
    config->mutable_bpf()->set_steering(Defaults::kSteeringPolicy);
  }
  if (config->state_dir().empty()) config->set_state_dir(Defaults::kStateDir);
}

}  // namespace zproxy::config
