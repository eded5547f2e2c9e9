// The proxy stream's decisions: what happens to a request when its upstream fails, closes,
// times out or answers early. Protocol-free and I/O-free: the worker reports what it
// knows (StreamProgress) and carries out the answer, so each rule lives in one place and
// is tested by scripting upstream events (proxy_stream_test.cc), without sockets.
//
// Rules (as Envoy's router and HAProxy's stream apply them):
//  - nothing reached the upstream yet (connect failed or timed out): one retry on another
//    endpoint;
//  - a pooled keep-alive connection the upstream had already closed (FIN before any byte
//    of the answer, on a reused connection, for a request without a body whose head is
//    kept): resent once on a fresh connection to the same endpoint;
//  - otherwise, before the response started: zproxy's own error reply (502/503/504);
//  - after the response started: the client connection is cut, with a reset when the
//    client frames the body by the close (a FIN would make a cut body look complete);
//  - a response that arrives before the request was read to its end closes the client
//    connection after it (the rest of the request is never read).
#pragma once

#include <cstdint>
#include <string_view>

#include "dataplane/metrics/worker_stats.h"

namespace zproxy::stream {

using dataplane::ErrorCause;

enum class ResponsePhase : uint8_t { kWaitHead, kBody, kDone };

// What the stream knows about its request in flight.
struct StreamProgress {
  bool tunnel = false;            // opaque bytes (tcp_proxy, after a 101, CONNECT)
  bool head_sent = false;         // the request head was handed to an upstream connection
  bool head_available = false;    // the encoded head is still at hand (can be sent again)
  bool request_done = false;      // the whole request was handed to the upstream
  bool response_started = false;  // a byte of the final response went to the client
  ResponsePhase phase = ResponsePhase::kWaitHead;
  bool reused_connection = false;  // the upstream connection came from the pool
  bool retried_stale = false;      // already resent once after a stale pooled connection
  uint8_t attempts = 0;            // retries on another endpoint so far
  bool client_keep_alive = true;   // the client's connection may carry another request
  bool draining = false;           // zproxy is shutting down or reloading
};

enum class Next : uint8_t {
  kReplyError,            // answer with `status` (close_client says how the connection ends)
  kRetryOtherEndpoint,    // pick another endpoint and start over
  kRetryFreshConnection,  // same endpoint, a new connection (the pooled one was stale)
  kAbort,                 // cut the client connection
  kAbortWithReset,        // cut it with a reset: its body is framed by the close
  kEndOfInput,            // the upstream's input ended: deliver what is buffered, then see
};

struct Decision {
  Next next = Next::kReplyError;
  ErrorCause cause = ErrorCause::kUpstreamClosed;
  int status = 0;            // kReplyError
  bool close_client = true;  // kReplyError: the client's connection ends after the reply
};

// The upstream attempt failed (connect refused or timed out, read timeout, bad response,
// send error). may_retry: the failure happened before the upstream could have acted on
// the request (connect stage).
Decision AfterUpstreamFailure(const StreamProgress& p, ErrorCause cause, bool may_retry);

// What the client gets for a failure that will not be retried.
Decision ReplyToFailure(const StreamProgress& p, ErrorCause cause);

// The upstream connection's input ended: reset = an error (RST) rather than a FIN.
// body_ends_at_close: the response body is framed by the close. bytes_pending: the
// upstream sent bytes not read yet.
Decision AfterUpstreamClosed(const StreamProgress& p, bool reset, bool body_ends_at_close,
                             bool bytes_pending);

// A timer fired on the upstream side: connect (or TLS handshake) or waiting for bytes.
// The cause it is (a connect timeout may be retried elsewhere; a read timeout may not),
// and what follows (AfterUpstreamFailure with that cause).
ErrorCause TimeoutCause(bool connecting);
Decision AfterUpstreamTimeout(const StreamProgress& p, bool connecting);

// --- A route's retry policy (docs/route-policy.md), beyond the built-in retries above.
enum class RetryTrigger : uint8_t {
  kConnectFailure,  // the connect (or TLS handshake) failed or timed out: nothing was sent
  kReset,           // closed, reset or garbled before any byte of the answer
  kStatus,          // a final response head with this status
  kPerTryTimeout,   // the try passed per_try_timeout_ms without a response head
};

struct RetryPolicyView {
  uint32_t conditions = 0;        // route_policy::RetryOnBit
  bool status_retriable = false;  // RetryConditions::RetriesStatus(the status), for kStatus
  uint32_t num_retries = 0;
  uint32_t retries_done = 0;
  bool non_idempotent_allowed = false;
};

struct RetryRequestView {
  bool idempotent = true;        // GET, HEAD, OPTIONS, TRACE, PUT, DELETE (RFC 9110 §9.2.2)
  bool has_body = false;         // its bytes are streamed, not kept: once sent it cannot go again
  bool budget_available = true;  // the cluster's retry budget has room
};

// Whether the route's policy retries this failure. Never once a byte of the response went
// to the client, never without the request head at hand, never a request whose body went
// upstream, and a non-idempotent request only before any of it reached an upstream (a
// connect failure), unless the policy allows it.
bool PolicyRetries(const StreamProgress& p, const RetryPolicyView& policy,
                   const RetryRequestView& req, RetryTrigger trigger);

// Full-jitter exponential backoff (AWS's "full jitter"): a time in [0, min(max, base *
// 2^retries_done)], from a random number.
uint32_t RetryBackoffMs(uint32_t base_ms, uint32_t max_ms, uint32_t retries_done, uint64_t random);

// The final response head is about to go out: does the client's connection end after it
// (a response before the request was read to its end, or draining)?
bool CloseClientAfterResponse(const StreamProgress& p);

// The upstream connection can carry another request after this exchange: its codec says
// the framing is intact, the whole request went out, nothing is pending on it.
bool UpstreamReusable(const StreamProgress& p, bool codec_keep_alive, bool nothing_pending);

// zproxy's reply to a failure: status and body by cause.
int ErrorStatus(ErrorCause cause);
std::string_view ErrorBody(ErrorCause cause);

}  // namespace zproxy::stream
