#include "dataplane/proxy/header_policy.h"

#include <gtest/gtest.h>

#include <string>

#include "dataplane/codec/http1/client_stream.h"
#include "dataplane/codec/http1/server_stream.h"

namespace zproxy::proxy {
namespace {

// The test's request rewrite: the header policy's settings plus whether the route
// forwards the client's upgrade (the proxy stream decides that; without it the upgrade is
// dropped like every connection-specific field).
struct RequestRewrite : RequestPolicy {
  bool upgrade = false;
  std::string_view proto = "http";
};

// Bytes in (HTTP/1 codec) -> neutral head -> header policy -> bytes out (HTTP/1 codec).
std::string Req(const char* raw, const RequestRewrite& rw) {
  http::Field storage[64];
  codec::http1::RequestHeadEvent ev;
  http1::Error err;
  std::string_view in(raw);
  EXPECT_EQ(codec::http1::DecodeRequestHead(in, http1::Limits{}, storage, rw.proto, &ev, &err),
            http1::Status::kDone)
      << http1::ErrorName(err);
  http::Field fields[64 + kPolicyExtraFields];
  char scratch[1024];
  EXPECT_TRUE(ApplyRequestPolicy(rw, fields, scratch, &ev.head));
  if (!rw.upgrade) ev.head.upgrade = {};
  char out[4096];
  size_t n = codec::http1::EncodeRequestHead(ev.head, out, sizeof(out));
  return std::string(out, n);
}

TEST(HeadWriter, AppendsForwardedForAndSetsProtoAndHost) {
  RequestRewrite rw;
  rw.client_ip = "10.0.0.7";
  std::string out =
      Req("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 1.2.3.4\r\n"
          "X-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n",
          rw);
  EXPECT_EQ(out,
            "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 1.2.3.4, 10.0.0.7\r\n"
            "Accept: */*\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n\r\n");
}

TEST(HeadWriter, UpgradeIsRedeclaredOnlyWhenAsked) {
  const char* raw =
      "GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
      "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
  RequestRewrite rw;
  rw.add_forwarded = false;
  std::string plain = Req(raw, rw);
  EXPECT_EQ(plain.find("Upgrade"), std::string::npos) << plain;
  rw.upgrade = true;
  std::string up = Req(raw, rw);
  EXPECT_EQ(up,
            "GET /chat HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Key: k\r\n"
            "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
}

TEST(HeadWriter, MergesSeveralForwardedForFields) {
  RequestRewrite rw;
  rw.client_ip = "10.0.0.7";
  std::string out =
      Req("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nA: b\r\n"
          "X-Forwarded-For: 2.2.2.2\r\n\r\n",
          rw);
  EXPECT_NE(out.find("X-Forwarded-For: 1.1.1.1, 2.2.2.2, 10.0.0.7\r\n"), std::string::npos) << out;
  EXPECT_EQ(out.find("X-Forwarded-For: 2.2.2.2\r\n"), std::string::npos) << out;
}

TEST(HeadWriter, DropsHopByHopIncludingConnectionNamed) {
  RequestRewrite rw;
  rw.client_ip = "127.0.0.1";
  std::string out =
      Req("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Custom\r\nKeep-Alive: 5\r\n"
          "X-Custom: secret\r\nTE: trailers\r\nProxy-Connection: x\r\nUpgrade: foo\r\n"
          "X-Other: kept\r\n\r\n",
          rw);
  for (const char* gone :
       {"Connection:", "Keep-Alive:", "X-Custom:", "TE:", "Proxy-Connection:", "Upgrade:"}) {
    EXPECT_EQ(out.find(gone), std::string::npos) << gone << " in\n" << out;
  }
  EXPECT_NE(out.find("X-Other: kept\r\n"), std::string::npos);
}

TEST(HeadWriter, HostRewriteAndChunkedRedeclared) {
  RequestRewrite rw;
  rw.host_rewrite = "internal.svc";
  rw.add_forwarded = false;
  std::string out =
      Req("POST /x HTTP/1.1\r\nHost: public\r\nTransfer-Encoding: chunked\r\n\r\n", rw);
  EXPECT_EQ(out, "POST /x HTTP/1.1\r\nHost: internal.svc\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(HeadWriter, AbsoluteFormBecomesOriginForm) {
  RequestRewrite rw;
  rw.add_forwarded = false;
  std::string out = Req("GET http://h/p?q HTTP/1.1\r\nHost: h\r\n\r\n", rw);
  EXPECT_EQ(out, "GET /p?q HTTP/1.1\r\nHost: h\r\n\r\n");
}

TEST(HeadWriter, Http10ClientProxiedAsHttp10WithKeepAlive) {
  RequestRewrite rw;
  rw.add_forwarded = false;
  rw.fallback_host = "127.0.0.1:3000";
  std::string out = Req("GET / HTTP/1.0\r\n\r\n", rw);
  EXPECT_EQ(out, "GET / HTTP/1.0\r\nHost: 127.0.0.1:3000\r\nConnection: keep-alive\r\n\r\n");
}

TEST(HeadWriter, OverflowReturnsZero) {
  http::Field storage[8];
  codec::http1::RequestHeadEvent ev;
  http1::Error err;
  ASSERT_EQ(codec::http1::DecodeRequestHead("GET / HTTP/1.1\r\nHost: h\r\n\r\n", http1::Limits{},
                                            storage, "http", &ev, &err),
            http1::Status::kDone);
  char out[10];
  EXPECT_EQ(codec::http1::EncodeRequestHead(ev.head, out, sizeof(out)), 0u);
}

TEST(HeadWriter, ResponseHeadCloseAndChunked) {
  http::Field storage[16];
  codec::http1::ClientStream up;
  up.Begin(http::Method::kGet, false);
  codec::http1::ResponseHeadEvent resp;
  http1::Error err;
  ASSERT_EQ(up.DecodeResponseHead("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                  "Connection: keep-alive\r\nX-A: 1\r\n\r\n",
                                  http1::Limits{}, storage, &resp, &err),
            http1::Status::kDone);
  codec::http1::ServerStream down;
  codec::http1::RequestHeadEvent req;
  req.head.method_id = http::Method::kGet;
  down.Begin(req);
  char out[512];
  size_t n = down.EncodeResponseHead(resp.head, /*close=*/true, out, sizeof(out));
  EXPECT_EQ(std::string(out, n),
            "HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
}

TEST(HeadWriter, LocalResponseHasLengthAndBody) {
  char out[256];
  size_t n = codec::http1::EncodeLocalResponse(502, "zproxy: upstream connect failed\n", true, out,
                                               sizeof(out));
  EXPECT_EQ(std::string(out, n),
            "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 32\r\n"
            "Connection: close\r\n\r\nzproxy: upstream connect failed\n");
}

}  // namespace
}  // namespace zproxy::proxy
