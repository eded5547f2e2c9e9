// CONNECT to a host name (docs/websocket-connect.md). The name is checked against the
// listener's name patterns, then resolved without blocking the loop: the process's Resolver
// answers from its cache at once, or queues the name for its thread and posts the answer to
// this worker's inbox (the wake eventfd brings it here). Allowed by a name pattern, every
// address is tried; allowed only through IP patterns, just the addresses they allow. The
// addresses are tried in the resolver's order until one connects, all within
// connect_timeout_ms counted from the CONNECT (resolution included). Answers for a CONNECT
// that has gone (client closed, timed out) carry an old sequence number and are dropped.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "dataplane/connect/connect_requests.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

namespace {

uint64_t Token(uint32_t idx, uint32_t seq) { return (static_cast<uint64_t>(idx) << 32) | seq; }

NetAddress ToNetAddress(const dns::Addr& a, uint16_t port) {
  NetAddress out;
  if (a.family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out.storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr, a.bytes, 4);
    out.len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    memcpy(&sin6->sin6_addr, a.bytes, 16);
    out.len = sizeof(sockaddr_in6);
  }
  return out;
}

}  // namespace

void ConnectRequests::StartConnectByName(uint32_t conn_idx,
                                         const codec::http1::RequestHeadEvent& req,
                                         std::string_view request_line, const ConnectName& name) {
  ResolveAndConnect(NewConnectExchange(conn_idx, req, request_line), name);
}

void ConnectRequests::ResolveAndConnect(uint32_t ex_idx, const ConnectName& name) {
  uint32_t conn_idx = w_.exchanges_.Get(ex_idx).client;
  const ConnectRuntime& cr = *w_.snap_->listeners[w_.conns_.Get(conn_idx).owner].connect;
  uint32_t t_idx = connect_targets_.Alloc();
  ConnectTarget& t = connect_targets_.Get(t_idx);
  t.name = name;
  t.exchange = ex_idx;
  t.seq = ++dns_seq_;
  t.by_name = ConnectNameAllowed(cr.allow, name);
  t.deadline_ms = w_.NowMs() + cr.upstream.connect_timeout_ms;
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ex.target = t_idx;
  if (w_.options_.resolver == nullptr) {
    t.addrs.error = EAI_FAIL;
    ConnectResolved(ex_idx);
    return;
  }
  switch (w_.options_.resolver->Resolve(name.view(), cr.dns_cache_ms, cr.dns_negative_cache_ms,
                                        cr.upstream.connect_timeout_ms, dns_inbox_,
                                        Token(t_idx, t.seq), &t.addrs)) {
    case dns::Resolver::Result::kHit:
      w_.stats_
          .connect_dns[static_cast<int>(t.addrs.error == 0 ? ConnectDnsResult::kCacheHit
                                                           : ConnectDnsResult::kNegativeHit)]
          .Add();
      ConnectResolved(ex_idx);
      return;
    case dns::Resolver::Result::kQueued:
      t.resolving = true;
      // The client's timer covers the wait: connect_timeout_ms from now.
      w_.timers_.Arm(w_.Cs(ex.cluster).t_connect, conn_idx, w_.NowMs());
      return;
    case dns::Resolver::Result::kQueueFull:
      w_.stats_.connect_dns[static_cast<int>(ConnectDnsResult::kQueueFull)].Add();
      if (!dns_full_warned_) {  // once per worker; zproxy_connect_dns_total counts them all
        dns_full_warned_ = true;
        ZLOG_WARN("worker %u: resolver queue full: CONNECTs to host names get 503 until it drains",
                  w_.options_.index);
      }
      FailConnect(ex_idx, ConnectOutcome::kResolverBusy, 503,
                  "zproxy: too many host names being resolved; try again\n", "resolver_busy");
      return;
  }
}

void ConnectRequests::OnDnsAnswers() {
  if (dns_inbox_ == nullptr) return;
  dns_inbox_->Take(&dns_answers_);
  for (const dns::Answer& a : dns_answers_) {
    uint32_t t_idx = static_cast<uint32_t>(a.token >> 32);
    uint32_t seq = static_cast<uint32_t>(a.token);
    if (t_idx >= connect_targets_.capacity()) continue;
    ConnectTarget& t = connect_targets_.Get(t_idx);
    // Stale: the CONNECT ended (and the slot may serve another one) before the answer.
    if (t.seq != seq || !t.resolving) continue;
    t.resolving = false;
    t.addrs = a.addrs;
    w_.stats_
        .connect_dns[static_cast<int>(a.addrs.error == 0 ? ConnectDnsResult::kResolved
                                                         : ConnectDnsResult::kFailed)]
        .Add();
    uint32_t ex_idx = t.exchange;
    w_.timers_.Disarm(w_.exchanges_.Get(ex_idx).client);
    ConnectResolved(ex_idx);
  }
}

void ConnectRequests::ConnectResolved(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ConnectTarget& t = connect_targets_.Get(ex.target);
  char body[kMaxHostName + 160];
  if (t.addrs.error != 0 || t.addrs.count == 0) {
    int n = snprintf(body, sizeof(body), "zproxy: cannot resolve %s (%s)\n", t.name.host,
                     dns::ErrorText(t.addrs.error != 0 ? t.addrs.error : EAI_NODATA));
    FailConnect(ex_idx, ConnectOutcome::kUnresolved, 502,
                std::string_view(body, static_cast<size_t>(n)), "unresolved");
    return;
  }
  if (!t.by_name) {
    // Allowed only if IP patterns allow its addresses: keep those, in order.
    const ConnectRuntime* cr = w_.Cs(ex.cluster).connect;
    uint8_t kept = 0;
    for (uint8_t i = 0; i < t.addrs.count; i++) {
      if (cr != nullptr && ConnectAllowed(cr->allow, ToNetAddress(t.addrs.a[i], t.name.port))) {
        t.addrs.a[kept++] = t.addrs.a[i];
      }
    }
    t.addrs.count = kept;
    if (kept == 0) {
      int n = snprintf(body, sizeof(body),
                       "zproxy: CONNECT target not allowed (%s resolves to no allowed address)\n",
                       t.name.host);
      FailConnect(ex_idx, ConnectOutcome::kDenied, 403,
                  std::string_view(body, static_cast<size_t>(n)), "denied");
      return;
    }
  }
  if (static_cast<int32_t>(t.deadline_ms - w_.NowMs()) <= 0) {
    w_.UpstreamFailed(ex_idx, ErrorCause::kConnectTimeout, false);
    return;
  }
  ConnectNextAddress(ex_idx);
}

void ConnectRequests::ConnectNextAddress(uint32_t ex_idx) {
  ConnectTarget& t = connect_targets_.Get(w_.exchanges_.Get(ex_idx).target);
  const dns::Addr& a = t.addrs.a[t.next++];
  t.tried++;
  w_.ConnectTo(ex_idx, 0, ToNetAddress(a, t.name.port), t.deadline_ms);
}

bool ConnectRequests::ConnectTryNext(uint32_t ex_idx, ErrorCause cause) {
  ConnectTarget& t = connect_targets_.Get(w_.exchanges_.Get(ex_idx).target);
  // A timeout means the shared deadline passed: nothing left to try with.
  if (cause == ErrorCause::kConnectTimeout || t.resolving || t.next >= t.addrs.count) return false;
  if (static_cast<int32_t>(t.deadline_ms - w_.NowMs()) <= 0) return false;
  ConnectNextAddress(ex_idx);
  return true;
}

void ConnectRequests::OnConnectResolveTimeout(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ConnectTarget& t = connect_targets_.Get(ex.target);
  t.resolving = false;  // a late answer is now stale
  w_.stats_.connect_dns[static_cast<int>(ConnectDnsResult::kTimeout)].Add();
  w_.stats_.CountError(ErrorCause::kConnectTimeout);
  char body[kMaxHostName + 160];
  int n = snprintf(body, sizeof(body), "zproxy: cannot resolve %s: no answer within %u ms\n",
                   t.name.host, w_.Cs(ex.cluster).cfg->connect_timeout_ms);
  FailConnect(ex_idx, ConnectOutcome::kTimeout, 504, std::string_view(body, static_cast<size_t>(n)),
              "resolve_timeout");
}

std::string_view ConnectRequests::ConnectNameErrorBody(const Exchange& ex, ErrorCause cause,
                                                       char* buf, size_t cap) {
  const ConnectTarget& t = connect_targets_.Get(ex.target);
  const char* why = cause == ErrorCause::kConnectRefused   ? "connection refused"
                    : cause == ErrorCause::kConnectTimeout ? "timed out"
                                                           : "connect error";
  int n = snprintf(buf, cap, "zproxy: cannot connect to %s:%u (%s; %u of %u address%s tried)\n",
                   t.name.host, t.name.port, why, t.tried, t.addrs.count,
                   t.addrs.count == 1 ? "" : "es");
  return std::string_view(buf, n < 0 ? 0 : std::min(static_cast<size_t>(n), cap - 1));
}

void ConnectRequests::FreeConnectTarget(Exchange& ex) {
  ConnectTarget& t = connect_targets_.Get(ex.target);
  t.seq = 0;  // no answer matches it any more
  t.resolving = false;
  connect_targets_.Free(ex.target);
  ex.target = kNil;
}

}  // namespace zproxy::dataplane
