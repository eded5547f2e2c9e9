#include "dataplane/metrics/worker_stats.h"

#include <cerrno>

namespace zproxy::dataplane {

const char* ErrorCauseName(ErrorCause c) {
  switch (c) {
    case ErrorCause::kConnectRefused:
      return "connect_refused";
    case ErrorCause::kConnectTimeout:
      return "connect_timeout";
    case ErrorCause::kConnectError:
      return "connect_error";
    case ErrorCause::kReadTimeout:
      return "read_timeout";
    case ErrorCause::kUpstreamClosed:
      return "upstream_closed";
    case ErrorCause::kBadResponse:
      return "bad_response";
    case ErrorCause::kNoRoute:
      return "no_route";
    case ErrorCause::kNoHealthyUpstream:
      return "no_healthy_upstream";
    case ErrorCause::kClientTimeout:
      return "client_timeout";
    case ErrorCause::kClientReset:
      return "client_reset";
    case ErrorCause::kBodyTooLarge:
      return "body_too_large";
    case ErrorCause::kOverload:
      return "overload";
    case ErrorCause::kUpstreamTlsExpired:
      return "upstream_tls_expired";
    case ErrorCause::kUpstreamTlsUntrusted:
      return "upstream_tls_untrusted";
    case ErrorCause::kUpstreamTlsName:
      return "upstream_tls_name";
    case ErrorCause::kUpstreamTlsHandshake:
      return "upstream_tls_handshake";
    case ErrorCause::kRewriteFailed:
      return "rewrite_failed";
    case ErrorCause::kHeaderChangesTooLarge:
      return "header_changes_too_large";
    case ErrorCause::kRouteTimeout:
      return "route_timeout";
    case ErrorCause::kPerTryTimeout:
      return "per_try_timeout";
    case ErrorCause::kNoOriginalDestination:
      return "no_original_destination";
    case ErrorCause::kCount:
      break;
  }
  return "unknown";
}

const char* ConnectOutcomeName(ConnectOutcome o) {
  switch (o) {
    case ConnectOutcome::kEstablished:
      return "established";
    case ConnectOutcome::kNotEnabled:
      return "not_enabled";
    case ConnectOutcome::kDenied:
      return "denied";
    case ConnectOutcome::kHostname:
      return "hostname";
    case ConnectOutcome::kBadTarget:
      return "bad_target";
    case ConnectOutcome::kRefused:
      return "refused";
    case ConnectOutcome::kTimeout:
      return "timeout";
    case ConnectOutcome::kError:
      return "error";
    case ConnectOutcome::kUnresolved:
      return "unresolved";
    case ConnectOutcome::kResolverBusy:
      return "resolver_busy";
    case ConnectOutcome::kCount:
      break;
  }
  return "unknown";
}

const char* ConnectDnsResultName(ConnectDnsResult r) {
  switch (r) {
    case ConnectDnsResult::kCacheHit:
      return "cache_hit";
    case ConnectDnsResult::kNegativeHit:
      return "negative_cache_hit";
    case ConnectDnsResult::kResolved:
      return "resolved";
    case ConnectDnsResult::kFailed:
      return "failed";
    case ConnectDnsResult::kQueueFull:
      return "queue_full";
    case ConnectDnsResult::kTimeout:
      return "timeout";
    case ConnectDnsResult::kCount:
      break;
  }
  return "unknown";
}

ConnectErrno ConnectErrnoOf(int err) {
  switch (err) {
    case ECONNREFUSED:
      return ConnectErrno::kConnRefused;
    case ETIMEDOUT:
      return ConnectErrno::kTimedOut;
    case EADDRNOTAVAIL:
      return ConnectErrno::kAddrNotAvail;
    case EADDRINUSE:
      return ConnectErrno::kAddrInUse;
    case ENETUNREACH:
      return ConnectErrno::kNetUnreach;
    case EHOSTUNREACH:
      return ConnectErrno::kHostUnreach;
    case ECONNRESET:
      return ConnectErrno::kConnReset;
    case EAFNOSUPPORT:
      return ConnectErrno::kAfNoSupport;
    case EINVAL:
      return ConnectErrno::kInval;
    case EMFILE:
      return ConnectErrno::kMfile;
    case ENFILE:
      return ConnectErrno::kNfile;
    case ENOBUFS:
      return ConnectErrno::kNoBufs;
    case ENOMEM:
      return ConnectErrno::kNoMem;
    case EACCES:
      return ConnectErrno::kAcces;
    case EPERM:
      return ConnectErrno::kPerm;
    default:
      return ConnectErrno::kOther;
  }
}

const char* ConnectErrnoName(ConnectErrno e) {
  switch (e) {
    case ConnectErrno::kConnRefused:
      return "ECONNREFUSED";
    case ConnectErrno::kTimedOut:
      return "ETIMEDOUT";
    case ConnectErrno::kAddrNotAvail:
      return "EADDRNOTAVAIL";
    case ConnectErrno::kAddrInUse:
      return "EADDRINUSE";
    case ConnectErrno::kNetUnreach:
      return "ENETUNREACH";
    case ConnectErrno::kHostUnreach:
      return "EHOSTUNREACH";
    case ConnectErrno::kConnReset:
      return "ECONNRESET";
    case ConnectErrno::kAfNoSupport:
      return "EAFNOSUPPORT";
    case ConnectErrno::kInval:
      return "EINVAL";
    case ConnectErrno::kMfile:
      return "EMFILE";
    case ConnectErrno::kNfile:
      return "ENFILE";
    case ConnectErrno::kNoBufs:
      return "ENOBUFS";
    case ConnectErrno::kNoMem:
      return "ENOMEM";
    case ConnectErrno::kAcces:
      return "EACCES";
    case ConnectErrno::kPerm:
      return "EPERM";
    case ConnectErrno::kOther:
    case ConnectErrno::kCount:
      break;
  }
  return "other";
}

}  // namespace zproxy::dataplane
