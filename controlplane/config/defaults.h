// The one home of the config defaults. A field left at 0 / empty is filled in here, so the
// data plane never sees "unset" and the Admin API (which reuses these) agrees with the file.
//
// Proto3 cannot tell an explicit 0 from "not given", so a 0 written in the file also
// becomes the default. Fields where 0 has its own meaning (workers: 0 = one per CPU,
// http.max_body_bytes: 0 = unlimited) get no default.
#pragma once

#include <cstdint>

#include "zproxy/v1/config.pb.h"

namespace zproxy::config {

struct Defaults {
  // io_uring, per worker.
  static constexpr uint32_t kSqDepth = 4096;
  static constexpr uint32_t kBufCount = 1024;
  // 16 KiB: the largest TLS record plaintext, so one kTLS receive fits one buffer, and a
  // typical request head (well under 8 KiB) fits too. 1024 x 16 KiB = 16 MiB per worker,
  // shared by all of its connections (an idle connection owns no buffer).
  static constexpr uint32_t kBufSize = 16384;
  // Measured (bench/run-sendzc, bench/RESULTS.md): on loopback SEND_ZC never wins, and at
  // 16-64 KiB it costs up to 2x the CPU per byte. One send covers at most one receive
  // buffer, so a threshold above buf_size keeps SEND_ZC off with the default buffers;
  // raise buf_size to 64 KiB+ on a NIC where zero-copy pays off to turn it on.
  static constexpr uint32_t kSendZcThreshold = 65536;
  static constexpr uint32_t kSqpollIdleMs = 1000;

  // Clusters and endpoints.
  static constexpr uint32_t kPoolSize = 64;
  static constexpr uint32_t kConnectTimeoutMs = 2000;
  static constexpr uint32_t kReadTimeoutMs = 30000;
  static constexpr uint32_t kClusterIdleTimeoutMs = 60000;
  static constexpr uint32_t kEndpointWeight = 1;
  static constexpr zproxy::v1::LbPolicy kLbPolicy = zproxy::v1::ROUND_ROBIN;

  // Host-name endpoints (DnsDiscovery): TTL clamp, retry after a failure, how long the
  // last addresses outlive failed lookups, one lookup's budget.
  static constexpr uint32_t kDnsMinRefreshMs = 1000;
  static constexpr uint32_t kDnsMaxRefreshMs = 300000;
  static constexpr uint32_t kDnsFailureRefreshMs = 2000;
  static constexpr uint32_t kDnsStaleMs = 300000;
  static constexpr uint32_t kDnsTimeoutMs = 2000;
  static constexpr const char* kDnsFamily = "any";

  // Passive outlier detection in the data plane.
  static constexpr uint32_t kOutlierFailures = 5;
  static constexpr uint32_t kOutlierBaseEjectionMs = 10000;
  static constexpr uint32_t kOutlierMaxEjectionMs = 300000;

  // Active health checks (only when a cluster has a health_check block).
  static constexpr uint32_t kHealthIntervalMs = 5000;
  static constexpr uint32_t kHealthTimeoutMs = 1000;
  static constexpr uint32_t kHealthyThreshold = 2;
  static constexpr uint32_t kUnhealthyThreshold = 3;
  // HTTP checks: an empty expected_statuses means any of kHealthExpectedStatusMin..Max
  // (2xx and 3xx). Not written into the config (a list of 200 numbers helps nobody).
  // Jitter: each interval is drawn from [0.9, 1.1] x interval_ms; the first probe of a new
  // endpoint runs within the first 10% of an interval. Endpoints start healthy.
  static constexpr uint32_t kHealthExpectedStatusMin = 200;
  static constexpr uint32_t kHealthExpectedStatusMax = 399;

  // HTTP listeners.
  static constexpr uint32_t kMaxRequestLineBytes = 8192;
  static constexpr uint32_t kMaxHeaderBytes = 65536;
  static constexpr uint32_t kMaxHeaders = 100;
  static constexpr uint32_t kHttp2MaxConcurrentStreams = 100;
  static constexpr uint32_t kHttpIdleTimeoutMs = 60000;
  static constexpr uint32_t kRequestHeaderTimeoutMs = 10000;

  // TLS listeners (only when a listener has a tls block).
  static constexpr const char* kTlsMinVersion = "TLS1_2";
  // Offered in this order (server preference): HTTP/2 first, as nginx and Envoy do.
  static constexpr const char* kTlsAlpn[] = {"h2", "http/1.1"};
  static constexpr uint32_t kTlsTicketRotationS = 3600;
  static constexpr uint32_t kTlsHandshakeTimeoutMs = 10000;
  // tcp_proxy (L4 pass-through) listeners.
  static constexpr uint32_t kTcpProxyIdleTimeoutMs = 60000;
  static constexpr zproxy::v1::PassthroughMode kPassthroughMode = zproxy::v1::AUTO;
  // tcp_proxy with sni_routes: the ClientHello must be complete within this (as the TLS
  // listeners' handshake timeout).
  static constexpr uint32_t kClientHelloTimeoutMs = 10000;

  // CONNECT (only when an HTTP listener has a connect block).
  static constexpr uint32_t kConnectProxyTimeoutMs = 5000;
  static constexpr uint32_t kConnectIdleTimeoutMs = 300000;
  static constexpr uint32_t kConnectDnsCacheMs = 5000;
  static constexpr uint32_t kConnectDnsNegativeCacheMs = 1000;
  // WebSocket/CONNECT tunnels of HTTP listeners (Listener.tunnel_mode).
  static constexpr zproxy::v1::PassthroughMode kTunnelMode = zproxy::v1::AUTO;

  // Process-wide.
  static constexpr uint32_t kDrainTimeoutMs = 10000;
  static constexpr const char* kAdminAddress = "unix:/run/zproxy/admin.sock";
  static constexpr const char* kBpffsPath = "/sys/fs/bpf/zproxy";
  static constexpr zproxy::v1::SteeringPolicy kSteeringPolicy = zproxy::v1::STEERING_POLICY_CPU;
  static constexpr const char* kStateDir = "/var/lib/zproxy";
  // metrics_address and access_log: empty = off, so no default.
};

// Fills every unset (0 / empty) field that has a default, in place. Idempotent.
void ApplyDefaults(zproxy::v1::Config* config);

// Per-message helpers, for the Admin API's partial updates (a cluster or listener added
// at run time gets the same defaults as one from the file).
void ApplyDefaults(zproxy::v1::IoUring* io_uring);
void ApplyDefaults(zproxy::v1::Listener* listener);
void ApplyDefaults(zproxy::v1::HttpOptions* http);
void ApplyDefaults(zproxy::v1::ListenerTls* tls);
void ApplyDefaults(zproxy::v1::ClusterTls* tls);
void ApplyDefaults(zproxy::v1::TcpProxy* tcp_proxy);
void ApplyDefaults(zproxy::v1::ConnectProxy* connect);
void ApplyDefaults(zproxy::v1::Cluster* cluster);
void ApplyDefaults(zproxy::v1::Endpoint* endpoint);
void ApplyDefaults(zproxy::v1::HealthCheck* health_check);

}  // namespace zproxy::config
