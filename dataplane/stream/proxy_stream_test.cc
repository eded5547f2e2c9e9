// The proxy stream against scripted upstream events, without sockets: each test plays
// what an upstream does (closes a stale pooled connection, stops answering, resets in the
// middle of a body, answers before the request body is read) and checks what the stream
// decides, step by step, as the worker would carry it out.
#include "dataplane/stream/proxy_stream.h"

#include <gtest/gtest.h>

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
