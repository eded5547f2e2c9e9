// Per-worker counters. Each worker is the only writer of its own WorkerStats, so an
// increment is a plain load+store (no locked instruction); the metrics thread reads
// them with relaxed loads. Values are monotonic counters or gauges.
#pragma once

#include <atomic>
#include <cstdint>

#include "dataplane/http1/http1.h"
#include "dataplane/proxy/passthrough_mode.h"
#include "dataplane/sidecar/original_dst.h"
#include "dataplane/tls/handshake_failure.h"

namespace zproxy::dataplane {

// Why a request did not get an upstream answer (the label of zproxy_errors_total).
enum class ErrorCause : uint8_t {
  kConnectRefused,
  kConnectTimeout,
  kConnectError,
  kReadTimeout,
  kUpstreamClosed,  // upstream closed or reset before a complete response
  kBadResponse,     // upstream sent a malformed response
  kNoRoute,
  kNoHealthyUpstream,
  kClientTimeout,  // client did not send a full request head in time (408)
  kClientReset,    // client went away mid-exchange
  kBodyTooLarge,
  kOverload,  // internal queue limits
  // TLS towards the upstream (clusters with tls): the handshake failed because...
  kUpstreamTlsExpired,    // its certificate is expired (or not yet valid)
  kUpstreamTlsUntrusted,  // its certificate does not chain to the configured CA
  kUpstreamTlsName,       // its certificate is not for the configured sni / its address
  kUpstreamTlsHandshake,  // anything else (version, cipher, alert, garbage)
  // Route policy (docs/route-policy.md):
  kRewriteFailed,          // a path rewrite gave no valid path, or too long a one: 500
  kHeaderChangesTooLarge,  // header changes did not fit: 431 (request) / sent unchanged
  kRouteTimeout,           // the route's timeout_ms passed before the response head: 504
  kPerTryTimeout,          // one try passed retry.per_try_timeout_ms: 504 (or a retry)
  // A cluster of type original_destination, for a connection without one (not redirected:
  // forwarding it would loop back to the listener; or the destination is unknown): 502.
  kNoOriginalDestination,
  kCount,
};

const char* ErrorCauseName(ErrorCause c);

// HTTP CONNECT requests on HTTP listeners, by how they ended (docs/websocket-connect.md).
enum class ConnectOutcome : uint8_t {
  kEstablished,   // target connected: 200, tunnel
  kNotEnabled,    // the listener has no connect block: 403, nothing forwarded
  kDenied,        // target not on the allowlist: 403, nothing connected
  kHostname,      // no longer counted (names are resolved); kept for existing dashboards
  kBadTarget,     // malformed authority-form (or a body): 400
  kRefused,       // target refused the connection: 502
  kTimeout,       // no answer within connect_timeout_ms: 504
  kError,         // other connect errors: 502
  kUnresolved,    // host name that does not resolve: 502
  kResolverBusy,  // the resolver's queue is full: 503
  kCount,
};

const char* ConnectOutcomeName(ConnectOutcome o);

// CONNECTs to host names, by how the name was resolved (zproxy_connect_dns_total).
enum class ConnectDnsResult : uint8_t {
  kCacheHit,     // addresses from the process's cache, no lookup
  kNegativeHit,  // a recent failure from the cache: 502 without a lookup
  kResolved,     // the resolver thread answered with addresses
  kFailed,       // the resolver thread answered: no such name / DNS failure
  kQueueFull,    // refused at once: 503
  kTimeout,      // no answer within connect_timeout_ms: 504
  kCount,
};

const char* ConnectDnsResultName(ConnectDnsResult r);

// Why the kernel failed an upstream connect (socket() or the connect itself), by errno
// (zproxy_upstream_connect_errors_total{errno}): zproxy_errors_total says refused, timeout
// or "connect_error"; this says which error (EADDRNOTAVAIL: no local port left, EMFILE:
// no descriptor, ...). A fixed set, so counting is an array index.
enum class ConnectErrno : uint8_t {
  kConnRefused,
  kTimedOut,
  kAddrNotAvail,
  kAddrInUse,
  kNetUnreach,
  kHostUnreach,
  kConnReset,
  kAfNoSupport,
  kInval,
  kMfile,
  kNfile,
  kNoBufs,
  kNoMem,
  kAcces,
  kPerm,
  kOther,
  kCount,
};

ConnectErrno ConnectErrnoOf(int err);          // err: a positive errno value
const char* ConnectErrnoName(ConnectErrno e);  // "ECONNREFUSED", ..., "other"

struct Counter {
  std::atomic<uint64_t> v{0};
  void Add(uint64_t n = 1) {
    v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void Sub(uint64_t n = 1) {
    v.store(v.load(std::memory_order_relaxed) - n, std::memory_order_relaxed);
  }
  uint64_t Load() const { return v.load(std::memory_order_relaxed); }
};

struct WorkerStats {
  Counter requests_by_class[6];  // index 1..5 = 1xx..5xx, 0 = other
  Counter accepts;
  Counter client_open;    // gauge
  Counter client_idle;    // gauge: keep-alive connections with no request in flight
  Counter upstream_open;  // gauge
  Counter upstream_idle;  // gauge: pooled
  Counter upstream_connects;
  Counter upstream_reused;
  Counter upstream_retries;
  Counter upstream_ejections;  // passive outlier detection
  Counter upstream_ejected;    // gauge: endpoints currently ejected by this worker
  Counter upstream_panic;      // picks made in panic mode (health ignored)
  // Route retry policies: retries made by trigger (connect_failure, reset, status,
  // per_try_timeout), and retries the cluster's retry budget refused.
  Counter route_retries[4];
  Counter retry_budget_exhausted;
  Counter errors[static_cast<int>(ErrorCause::kCount)];
  Counter parser_rejections[static_cast<int>(http1::Error::kCount)];
  Counter enobufs_rearms;
  Counter send_zc;
  Counter send_zc_bytes;      // bytes SEND_ZC completions reported sent
  Counter send_zc_fallbacks;  // SEND_ZC refused (ENOMEM, ENOBUFS, EOPNOTSUPP), re-sent plain
  Counter send_zc_off;        // gauge: 1 once the worker stopped using SEND_ZC
  Counter send_plain;
  Counter bytes_from_clients;
  Counter bytes_to_clients;
  Counter peername_failures;
  // Listeners with original_destination: accepted connections by how their original
  // destination was learned, or why not (sidecar::DstSource).
  Counter original_dst[static_cast<int>(sidecar::DstSource::kCount)];
  Counter tcp_proxy_connections;  // tcp_proxy listeners: connections accepted
  Counter tcp_proxy_bytes;        // bytes moved in either direction (every mode)
  Counter passthrough_mode[3];    // tcp_proxy connections by PassMode (copy, splice, sockmap)
  Counter passthrough_fallbacks;  // a connection could not use its listener's mode
  // sockmap: connections reset rather than risk reordered bytes (tunnel/sockmap.cc: a
  // pairing refused half-way after bytes moved, or bytes readable on a paired socket).
  Counter sockmap_stragglers;
  Counter websocket_upgrades;  // HTTP exchanges turned into tunnels by a 101
  // HTTP/2 client connections (h2c preface or ALPN h2), their streams, streams refused
  // before they became requests (oversized or incomplete heads), and connection errors
  // (GOAWAY with an error: malformed frames, floods, flow-control violations).
  Counter h2_connections;
  // Receives completed after a pause (backpressure) whose bytes were copied out of the
  // provided buffer (dataplane/worker/output_queue.cc).
  Counter paused_recv_copies;
  Counter h2_streams;
  Counter h2_refused_streams;
  Counter h2_connection_errors;
  // Tunnels (tcp_proxy, WebSocket, CONNECT) that did not get their listener's mode, by why.
  Counter tunnel_fallbacks[static_cast<int>(TunnelFallback::kCount)];
  Counter connect_requests[static_cast<int>(ConnectOutcome::kCount)];
  Counter connect_dns[static_cast<int>(ConnectDnsResult::kCount)];
  Counter upstream_connect_errors[static_cast<int>(ConnectErrno::kCount)];
  // TLS listeners.
  Counter tls_handshakes[2];  // [0] full, [1] resumed (session ticket)
  Counter tls_handshake_failures[static_cast<int>(tls::HandshakeFailure::kCount)];
  Counter tls_connections[static_cast<int>(tls::TlsMode::kCount)];  // by mode, after handshake
  Counter tls_errors;  // fatal TLS errors after the handshake (bad record MAC, ...)
  Counter tls_offload[static_cast<int>(tls::OffloadOutcome::kCount)];  // kTLS attempts

  void CountStatus(int status) {
    int cls = status / 100;
    requests_by_class[(cls >= 1 && cls <= 5) ? cls : 0].Add();
  }
  void CountError(ErrorCause c) { errors[static_cast<int>(c)].Add(); }
  void CountConnectErrno(int err) {
    upstream_connect_errors[static_cast<int>(ConnectErrnoOf(err))].Add();
  }
};

}  // namespace zproxy::dataplane
