// The proxy stream against scripted upstream events, without sockets: each test plays
// what an upstream does (closes a stale pooled connection, stops answering, resets in the
// middle of a body, answers before the request body is read) and checks what the stream
// decides, step by step, as the worker would carry it out.
#include "dataplane/stream/proxy_stream.h"

#include <gtest/gtest.h>

#include "common/route_policy_rules.h"

namespace zproxy::stream {
namespace {

// A GET on a connection taken from the pool: head sent, a copy kept for a resend.
StreamProgress GetOnPooledConnection() {
  StreamProgress p;
  p.head_sent = true;
  p.head_available = true;
  p.request_done = true;
  p.reused_connection = true;
  return p;
}

TEST(ProxyStream, StalePooledConnectionIsRetriedOnceOnAFreshOne) {
  StreamProgress p = GetOnPooledConnection();
  // The upstream had closed the idle connection: FIN, no byte of an answer.
  Decision d = AfterUpstreamClosed(p, /*reset=*/false, false, /*bytes_pending=*/false);
  EXPECT_EQ(d.next, Next::kRetryFreshConnection);
  // The worker resends on a new connection (not pooled, head handed over this time).
  p.retried_stale = true;
  p.reused_connection = false;
  p.head_available = false;
  // That one closes too: now it is the upstream's answer, a 502, and the client's
  // keep-alive connection survives it (the request was read to its end).
  d = AfterUpstreamClosed(p, false, false, false);
  EXPECT_EQ(d.next, Next::kReplyError);
  EXPECT_EQ(d.status, 502);
  EXPECT_EQ(d.cause, ErrorCause::kUpstreamClosed);
  EXPECT_FALSE(d.close_client);
  EXPECT_EQ(ErrorBody(d.cause), "zproxy: upstream closed connection before response\n");
}

TEST(ProxyStream, NoStaleRetryWhenItCouldRepeatSomething) {
  StreamProgress p = GetOnPooledConnection();
  // The upstream sent bytes before closing: an answer was under way.
  EXPECT_EQ(AfterUpstreamClosed(p, false, false, /*bytes_pending=*/true).next, Next::kReplyError);
  // A request with a body: its head is not kept, nothing is resent.
  p.head_available = false;
  EXPECT_EQ(AfterUpstreamClosed(p, false, false, false).next, Next::kReplyError);
  // A fresh connection that closes is not stale, it is a failure.
  p = GetOnPooledConnection();
  p.reused_connection = false;
  EXPECT_EQ(AfterUpstreamClosed(p, false, false, false).next, Next::kReplyError);
}

TEST(ProxyStream, ReadTimeoutBecomes504) {
  StreamProgress p = GetOnPooledConnection();
  Decision d = AfterUpstreamTimeout(p, /*connecting=*/false);
  EXPECT_EQ(d.next, Next::kReplyError);
  EXPECT_EQ(d.status, 504);
  EXPECT_EQ(d.cause, ErrorCause::kReadTimeout);
  EXPECT_EQ(ErrorBody(d.cause), "zproxy: upstream read timeout\n");
  // Once the response started, a timeout can only cut it.
  p.response_started = true;
  p.phase = ResponsePhase::kBody;
  EXPECT_EQ(AfterUpstreamTimeout(p, false).next, Next::kAbort);
}

TEST(ProxyStream, ConnectTimeoutRetriesAnotherEndpointThenAnswers504) {
  StreamProgress p;
  p.head_available = true;  // encoded, not sent: nothing reached the upstream
  p.request_done = true;
  Decision d = AfterUpstreamTimeout(p, /*connecting=*/true);
  EXPECT_EQ(d.next, Next::kRetryOtherEndpoint);
  p.attempts = 1;
  d = AfterUpstreamTimeout(p, true);
  EXPECT_EQ(d.next, Next::kReplyError);
  EXPECT_EQ(d.status, 504);
  EXPECT_EQ(d.cause, ErrorCause::kConnectTimeout);
}

TEST(ProxyStream, RefusedConnectRetriesThenAnswers502) {
  StreamProgress p;
  p.head_available = true;
  p.request_done = false;  // a body still to come: the client's connection cannot be reused
  Decision d = AfterUpstreamFailure(p, ErrorCause::kConnectRefused, true);
  EXPECT_EQ(d.next, Next::kRetryOtherEndpoint);
  p.attempts = 1;
  d = AfterUpstreamFailure(p, ErrorCause::kConnectRefused, true);
  EXPECT_EQ(d.next, Next::kReplyError);
  EXPECT_EQ(d.status, 502);
  EXPECT_TRUE(d.close_client);
  EXPECT_EQ(ErrorStatus(ErrorCause::kNoHealthyUpstream), 503);
}

TEST(ProxyStream, UpstreamResetMidBody) {
  StreamProgress p = GetOnPooledConnection();
  p.response_started = true;
  p.phase = ResponsePhase::kBody;
  // A close-delimited body: a reset cannot end it, the client sees a reset too.
  EXPECT_EQ(AfterUpstreamClosed(p, /*reset=*/true, /*body_ends_at_close=*/true, false).next,
            Next::kAbortWithReset);
  // A FIN ends a close-delimited body; for a length- or chunk-framed one it is the end of
  // input, and the body's framing (not the FIN) says whether it was complete.
  EXPECT_EQ(AfterUpstreamClosed(p, false, true, false).next, Next::kEndOfInput);
  EXPECT_EQ(AfterUpstreamClosed(p, true, false, true).next, Next::kEndOfInput);
  // A failure after the response started is never answered with an error page.
  EXPECT_EQ(AfterUpstreamFailure(p, ErrorCause::kBadResponse, false).next, Next::kAbort);
}

TEST(ProxyStream, EarlyResponseClosesTheClientAfterIt) {
  StreamProgress p;
  p.head_sent = true;
  p.request_done = false;  // the upstream answers (e.g. 413) before the body was read
  EXPECT_TRUE(CloseClientAfterResponse(p));
  EXPECT_FALSE(UpstreamReusable(p, /*codec_keep_alive=*/true, /*nothing_pending=*/true));
  p.request_done = true;
  EXPECT_FALSE(CloseClientAfterResponse(p));
  EXPECT_TRUE(UpstreamReusable(p, true, true));
  EXPECT_FALSE(UpstreamReusable(p, true, /*nothing_pending=*/false));
  p.draining = true;
  EXPECT_TRUE(CloseClientAfterResponse(p));
}

TEST(ProxyStream, TunnelsHaveNoErrorPage) {
  StreamProgress p;
  p.tunnel = true;
  Decision d = AfterUpstreamFailure(p, ErrorCause::kConnectRefused, true);
  EXPECT_EQ(d.next, Next::kRetryOtherEndpoint);  // nothing was sent: another endpoint
  p.attempts = 1;
  EXPECT_EQ(AfterUpstreamFailure(p, ErrorCause::kConnectRefused, true).next, Next::kAbort);
}

TEST(ProxyStream, ErrorReplyClosesWhenTheClientOrZproxySaysSo) {
  StreamProgress p = GetOnPooledConnection();
  p.client_keep_alive = false;
  EXPECT_TRUE(ReplyToFailure(p, ErrorCause::kBadResponse).close_client);
  p.client_keep_alive = true;
  p.draining = true;
  EXPECT_TRUE(ReplyToFailure(p, ErrorCause::kBadResponse).close_client);
  p.draining = false;
  EXPECT_FALSE(ReplyToFailure(p, ErrorCause::kBadResponse).close_client);
}

}  // namespace
}  // namespace zproxy::stream

namespace zproxy::stream {
namespace {

using route_policy::kRetry5xx;
using route_policy::kRetryConnectFailure;
using route_policy::kRetryPerTryTimeout;
using route_policy::kRetryReset;

StreamProgress Sent() {
  StreamProgress p;
  p.head_sent = true;
  p.head_available = true;
  p.request_done = true;
  return p;
}

TEST(PolicyRetries, ConditionsTriesAndBudget) {
  RetryPolicyView policy;
  policy.conditions = kRetryReset;
  policy.num_retries = 2;
  RetryRequestView get;
  EXPECT_TRUE(PolicyRetries(Sent(), policy, get, RetryTrigger::kReset));
  EXPECT_FALSE(PolicyRetries(Sent(), policy, get, RetryTrigger::kStatus));
  // reset also covers a try that timed out (the upstream never answered).
  EXPECT_TRUE(PolicyRetries(Sent(), policy, get, RetryTrigger::kPerTryTimeout));
  policy.conditions = kRetryPerTryTimeout;
  EXPECT_FALSE(PolicyRetries(Sent(), policy, get, RetryTrigger::kReset));
  policy.conditions = kRetryReset;
  policy.retries_done = 2;
  EXPECT_FALSE(PolicyRetries(Sent(), policy, get, RetryTrigger::kReset));
  policy.retries_done = 0;
  get.budget_available = false;
  EXPECT_FALSE(PolicyRetries(Sent(), policy, get, RetryTrigger::kReset));
}

TEST(PolicyRetries, StatusNeedsItsCondition) {
  RetryPolicyView policy;
  policy.num_retries = 1;
  RetryRequestView get;
  policy.status_retriable = false;
  EXPECT_FALSE(PolicyRetries(Sent(), policy, get, RetryTrigger::kStatus));
  policy.status_retriable = true;
  EXPECT_TRUE(PolicyRetries(Sent(), policy, get, RetryTrigger::kStatus));
}

TEST(PolicyRetries, NonIdempotentOnlyBeforeAnythingWasSent) {
  RetryPolicyView policy;
  policy.conditions = kRetry5xx;
  policy.num_retries = 3;
  RetryRequestView post;
  post.idempotent = false;
  StreamProgress not_sent;
  not_sent.head_available = true;
  EXPECT_TRUE(PolicyRetries(not_sent, policy, post, RetryTrigger::kConnectFailure));
  EXPECT_FALSE(PolicyRetries(Sent(), policy, post, RetryTrigger::kReset));
  policy.non_idempotent_allowed = true;
  EXPECT_TRUE(PolicyRetries(Sent(), policy, post, RetryTrigger::kReset));
  // A body that went upstream cannot go again, whatever the policy.
  post.has_body = true;
  EXPECT_FALSE(PolicyRetries(Sent(), policy, post, RetryTrigger::kReset));
  EXPECT_TRUE(PolicyRetries(not_sent, policy, post, RetryTrigger::kConnectFailure));
}

TEST(PolicyRetries, NeverAfterTheResponseStartedOrWithoutTheHead) {
  RetryPolicyView policy;
  policy.conditions = kRetryConnectFailure | kRetryReset;
  policy.num_retries = 1;
  RetryRequestView get;
  StreamProgress started = Sent();
  started.response_started = true;
  EXPECT_FALSE(PolicyRetries(started, policy, get, RetryTrigger::kReset));
  StreamProgress gone = Sent();
  gone.head_available = false;
  EXPECT_FALSE(PolicyRetries(gone, policy, get, RetryTrigger::kReset));
}

TEST(RetryBackoff, FullJitterWithinTheDoublingCap) {
  for (uint64_t r = 0; r < 1000; r += 7) {
    EXPECT_LE(RetryBackoffMs(25, 250, 0, r), 25u);
    EXPECT_LE(RetryBackoffMs(25, 250, 2, r), 100u);
    EXPECT_LE(RetryBackoffMs(25, 250, 10, r), 250u);
  }
  EXPECT_EQ(RetryBackoffMs(0, 0, 3, 12345), 0u);
  EXPECT_EQ(RetryBackoffMs(25, 250, 1, 50), 50u);
}

}  // namespace
}  // namespace zproxy::stream
