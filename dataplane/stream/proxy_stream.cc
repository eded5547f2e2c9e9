#include "dataplane/stream/proxy_stream.h"

#include "common/route_policy_rules.h"

namespace zproxy::stream {

Decision AfterUpstreamFailure(const StreamProgress& p, ErrorCause cause, bool may_retry) {
  // Nothing reached the upstream yet (connect failed): once more, on another endpoint.
  if (may_retry && !p.head_sent && p.attempts == 0 && (p.head_available || p.tunnel)) {
    Decision d;
    d.next = Next::kRetryOtherEndpoint;
    d.cause = cause;
    return d;
  }
  return ReplyToFailure(p, cause);
}

Decision ReplyToFailure(const StreamProgress& p, ErrorCause cause) {
  Decision d;
  d.cause = cause;
  if (p.tunnel || p.response_started) {
    // No HTTP left to answer with (a tunnel), or part of the response is already on its
    // way: the only honest signal is to close the client connection.
    d.next = Next::kAbort;
    return d;
  }
  d.next = Next::kReplyError;
  d.status = ErrorStatus(cause);
  d.close_client = !p.request_done || !p.client_keep_alive || p.draining;
  return d;
}

Decision AfterUpstreamClosed(const StreamProgress& p, bool reset, bool body_ends_at_close,
                             bool bytes_pending) {
  Decision d;
  d.cause = ErrorCause::kUpstreamClosed;
  if (p.phase == ResponsePhase::kBody) {
    // Only a FIN ends a close-delimited body; after a reset it may be cut short, and the
    // client must not see it end the way a complete one does.
    if (reset && body_ends_at_close) {
      d.next = Next::kAbortWithReset;
      return d;
    }
    d.next = Next::kEndOfInput;
    return d;
  }
  if (p.phase == ResponsePhase::kWaitHead && !p.response_started && p.reused_connection &&
      p.head_available && !p.retried_stale && !bytes_pending) {
    // A keep-alive connection the upstream had already closed: the request never got an
    // answer and had no body, so it is safe to send again on a fresh connection.
    d.next = Next::kRetryFreshConnection;
    return d;
  }
  return AfterUpstreamFailure(p, ErrorCause::kUpstreamClosed, false);
}

ErrorCause TimeoutCause(bool connecting) {
  return connecting ? ErrorCause::kConnectTimeout : ErrorCause::kReadTimeout;
}

Decision AfterUpstreamTimeout(const StreamProgress& p, bool connecting) {
  return AfterUpstreamFailure(p, TimeoutCause(connecting), connecting);
}

bool PolicyRetries(const StreamProgress& p, const RetryPolicyView& policy,
                   const RetryRequestView& req, RetryTrigger trigger) {
  using route_policy::kRetry5xx;
  using route_policy::kRetryConnectFailure;
  using route_policy::kRetryGatewayError;
  using route_policy::kRetryPerTryTimeout;
  using route_policy::kRetryReset;
  if (policy.retries_done >= policy.num_retries || !req.budget_available) return false;
  if (p.tunnel || p.response_started || !p.head_available) return false;
  const uint32_t on = policy.conditions;
  // 5xx and gateway_error also cover the failures that would have been one (Envoy's rule).
  const uint32_t failure_bits = kRetryReset | kRetry5xx | kRetryGatewayError;
  bool wanted = false;
  switch (trigger) {
    case RetryTrigger::kConnectFailure:
      wanted = on & (kRetryConnectFailure | failure_bits);
      break;
    case RetryTrigger::kReset:
      wanted = on & failure_bits;
      break;
    case RetryTrigger::kStatus:
      wanted = policy.status_retriable;
      break;
    case RetryTrigger::kPerTryTimeout:
      wanted = on & (kRetryPerTryTimeout | failure_bits);
      break;
  }
  if (!wanted) return false;
  if (trigger == RetryTrigger::kConnectFailure && !p.head_sent) return true;  // nothing sent
  // Something went upstream: only a request that can be sent again exactly, and that may
  // be repeated.
  if (req.has_body) return false;
  return req.idempotent || policy.non_idempotent_allowed;
}

uint32_t RetryBackoffMs(uint32_t base_ms, uint32_t max_ms, uint32_t retries_done, uint64_t random) {
  uint64_t cap = base_ms;
  for (uint32_t i = 0; i < retries_done && cap < max_ms; ++i) cap *= 2;
  if (cap > max_ms) cap = max_ms;
  return cap == 0 ? 0 : static_cast<uint32_t>(random % (cap + 1));
}

bool CloseClientAfterResponse(const StreamProgress& p) { return !p.request_done || p.draining; }

bool UpstreamReusable(const StreamProgress& p, bool codec_keep_alive, bool nothing_pending) {
  return codec_keep_alive && p.request_done && nothing_pending;
}

int ErrorStatus(ErrorCause cause) {
  switch (cause) {
    case ErrorCause::kConnectTimeout:
    case ErrorCause::kReadTimeout:
    case ErrorCause::kRouteTimeout:
    case ErrorCause::kPerTryTimeout:
      return 504;
    case ErrorCause::kNoHealthyUpstream:
      return 503;
    default:
      return 502;
  }
}

std::string_view ErrorBody(ErrorCause cause) {
  switch (cause) {
    case ErrorCause::kConnectRefused:
      return "zproxy: upstream connect failed (connection refused)\n";
    case ErrorCause::kConnectTimeout:
      return "zproxy: upstream connect timeout\n";
    case ErrorCause::kConnectError:
      return "zproxy: upstream connect failed\n";
    case ErrorCause::kReadTimeout:
      return "zproxy: upstream read timeout\n";
    case ErrorCause::kUpstreamClosed:
      return "zproxy: upstream closed connection before response\n";
    case ErrorCause::kBadResponse:
      return "zproxy: invalid upstream response\n";
    case ErrorCause::kNoHealthyUpstream:
      return "zproxy: no healthy upstream\n";
    case ErrorCause::kUpstreamTlsExpired:
      return "zproxy: upstream TLS certificate rejected (expired or not yet valid)\n";
    case ErrorCause::kUpstreamTlsUntrusted:
      return "zproxy: upstream TLS certificate rejected (not signed by the cluster's ca)\n";
    case ErrorCause::kUpstreamTlsName:
      return "zproxy: upstream TLS certificate rejected (not valid for the cluster's sni)\n";
    case ErrorCause::kUpstreamTlsHandshake:
      return "zproxy: upstream TLS handshake failed\n";
    case ErrorCause::kRouteTimeout:
      return "zproxy: route timeout\n";
    case ErrorCause::kPerTryTimeout:
      return "zproxy: upstream per-try timeout\n";
    case ErrorCause::kNoOriginalDestination:
      return "zproxy: no original destination (the connection was not redirected to this "
             "listener; forwarding it would loop)\n";
    default:
      return "zproxy: upstream error\n";
  }
}

}  // namespace zproxy::stream
