#include "dataplane/http1/http1.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/http1/simd_scan.h"

namespace zproxy::http1 {
namespace {

struct Req {
  Status status;
  Error error;
  RequestHead head;
};

Header g_storage[128];

Req ParseReq(std::string_view s, Limits limits = Limits()) {
  Req r;
  r.error = Error::kCount;
  r.status = ParseRequest(s, limits, g_storage, &r.head, &r.error);
  return r;
}

Error ReqError(std::string_view s) {
  Req r = ParseReq(s);
  EXPECT_EQ(r.status, Status::kError) << s;
  return r.error;
}

struct Resp {
  Status status;
  Error error;
  ResponseHead head;
};

Resp ParseResp(std::string_view s, Method m = Method::kGet, Limits limits = Limits()) {
  Resp r;
  r.status = ParseResponse(s, m, limits, g_storage, &r.head, &r.error);
  return r;
}

constexpr std::string_view kSimple =
    "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";

TEST(ParseRequest, Simple) {
  Req r = ParseReq(kSimple);
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.error, Error::kNone);
  EXPECT_EQ(r.head.method, "GET");
  EXPECT_EQ(r.head.method_id, Method::kGet);
  EXPECT_EQ(r.head.target, "/index.html?x=1");
  EXPECT_EQ(r.head.path, "/index.html");
  EXPECT_EQ(r.head.version_minor, 1);
  EXPECT_EQ(r.head.host, "example.com");
  ASSERT_EQ(r.head.headers.size(), 2u);
  EXPECT_EQ(r.head.headers[1].name, "User-Agent");
  EXPECT_EQ(r.head.headers[1].value, "t");
  EXPECT_EQ(r.head.body, BodyKind::kNone);
  EXPECT_TRUE(r.head.keep_alive);
  EXPECT_EQ(r.head.head_bytes, kSimple.size());
}

TEST(ParseRequest, StopsAtEndOfHead) {
  std::string s = std::string(kSimple) + "GET / HTTP/1.1\r\n";
  Req r = ParseReq(s);
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.head_bytes, kSimple.size());
}

TEST(ParseRequest, MethodIds) {
  const std::pair<const char*, Method> cases[] = {
      {"GET", Method::kGet},     {"HEAD", Method::kHead},     {"POST", Method::kPost},
      {"PUT", Method::kPut},     {"DELETE", Method::kDelete}, {"OPTIONS", Method::kOptions},
      {"TRACE", Method::kTrace}, {"PATCH", Method::kPatch},   {"PROPFIND", Method::kOther},
      {"get", Method::kOther},
  };
  for (auto [m, id] : cases) {
    std::string s = std::string(m) + " / HTTP/1.1\r\nHost: a\r\n\r\n";
    Req r = ParseReq(s);
    ASSERT_EQ(r.status, Status::kDone) << m;
    EXPECT_EQ(r.head.method_id, id) << m;
  }
}

TEST(ParseRequest, RequestLineErrors) {
  EXPECT_EQ(ReqError("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadMethod);
  EXPECT_EQ(ReqError(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadMethod);
  EXPECT_EQ(ReqError("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadTarget);
  EXPECT_EQ(ReqError("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadMethod);
  EXPECT_EQ(ReqError("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadTarget);
  EXPECT_EQ(ReqError("GET /\xC3\xA9 HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadTarget);
  EXPECT_EQ(ReqError("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), Error::kBadVersion);
  EXPECT_EQ(ReqError("GET / http/1.1\r\nHost: a\r\n\r\n"), Error::kBadVersion);
  EXPECT_EQ(ReqError("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), Error::kBadVersion);
  EXPECT_EQ(ReqError("GET / HTTP/11\r\nHost: a\r\n\r\n"), Error::kBadVersion);
  EXPECT_EQ(ReqError("GET /\r\n\r\n"), Error::kBadVersion);
  EXPECT_EQ(ReqError("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), Error::kUnsupportedVersion);
  EXPECT_EQ(ReqError("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), Error::kUnsupportedVersion);
  EXPECT_EQ(ReqError("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), Error::kUnsupportedVersion);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\nHost: a\r\n\r\n"), Error::kBareLf);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\rHost: a\r\n\r\n"), Error::kBadVersion);
}

TEST(ParseRequest, TargetForms) {
  Req r = ParseReq("GET http://Example.com:8080/a/b?q HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.path, "/a/b");
  EXPECT_EQ(r.head.host, "Example.com:8080");  // the target wins over Host
  r = ParseReq("GET https://example.com HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.path, "/");
  r = ParseReq("GET http://example.com?q=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.path, "/");
  r = ParseReq("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.method_id, Method::kConnect);
  EXPECT_EQ(r.head.host, "example.com:443");
  r = ParseReq("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.path, "*");

  EXPECT_EQ(ReqError("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadTarget);
  EXPECT_EQ(ReqError("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadTarget);
  EXPECT_EQ(ReqError("CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadTarget);
  EXPECT_EQ(ReqError("GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadTarget);
  EXPECT_EQ(ReqError("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadTarget);
  EXPECT_EQ(ReqError("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadTarget);
  EXPECT_EQ(ReqError("GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n"), Error::kBadTarget);
}

TEST(ParseRequest, LeadingEmptyLinesSkipped) {
  std::string s = "\r\n\r\n" + std::string(kSimple);
  Req r = ParseReq(s);
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.method, "GET");
  EXPECT_EQ(r.head.head_bytes, s.size());
  EXPECT_EQ(ReqError("\n" + std::string(kSimple)), Error::kBareLf);
}

TEST(ParseRequest, FieldSyntax) {
  Req r = ParseReq("GET / HTTP/1.1\r\nHost: a\r\nX:  \t v a l \t \r\nY:\r\nZ: \x80\xff\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  ASSERT_EQ(r.head.headers.size(), 4u);
  EXPECT_EQ(r.head.headers[1].value, "v a l");
  EXPECT_EQ(r.head.headers[2].value, "");
  EXPECT_EQ(r.head.headers[3].value, "\x80\xff");

  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), Error::kBadHeaderName);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), Error::kBadHeaderName);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\nX(y): x\r\n\r\n"), Error::kBadHeaderName);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), Error::kBadHeaderName);
  // The length from sizeof: a hand count (it said 37 for 35) read past the literal (ASan).
  static const char kNul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
  EXPECT_EQ(ReqError(std::string(kNul, sizeof(kNul) - 1)), Error::kBadHeaderValue);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), Error::kBadHeaderValue);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), Error::kBadHeaderValue);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\nX: a\x0b\r\n\r\n"), Error::kBadHeaderValue);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), Error::kObsFold);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"), Error::kObsFold);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), Error::kObsFold);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), Error::kBareLf);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\n\n"), Error::kBareLf);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\nX\n\r\n"), Error::kBareLf);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\n\rX"), Error::kBadHeaderName);
}

TEST(ParseRequest, ContentLength) {
  Req r = ParseReq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0042\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.body, BodyKind::kContentLength);
  EXPECT_EQ(r.head.content_length, 42u);
  r = ParseReq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.body, BodyKind::kNone);
  r = ParseReq("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.content_length, 9223372036854775807u);

  for (const char* v : {"", "-1", "+1", "1 2", "0x10", "5, 5", "5,5", "9223372036854775808",
                        "99999999999999999999999", "1a"}) {
    std::string s = std::string("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: ") + v + "\r\n\r\n";
    EXPECT_EQ(ReqError(s), Error::kBadContentLength) << v;
  }
  EXPECT_EQ(
      ReqError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
      Error::kDuplicateContentLength);
}

TEST(ParseRequest, TransferEncoding) {
  Req r = ParseReq("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.body, BodyKind::kChunked);
  EXPECT_TRUE(IsHopByHop(r.head.hop_by_hop, 1));

  for (const char* v : {"gzip, chunked", "chunked, gzip", "chunked,", "xchunked", "chunkedx",
                        "identity", "\"chunked\"", "chunked;q=1", "chunked chunked"}) {
    std::string s =
        std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ") + v + "\r\n\r\n";
    EXPECT_EQ(ReqError(s), Error::kBadTransferEncoding) << v;
  }
  EXPECT_EQ(ReqError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n"),
            Error::kBadHeaderValue);
  EXPECT_EQ(ReqError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"),
            Error::kBadTransferEncoding);
  EXPECT_EQ(ReqError("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Error::kBadTransferEncoding);
  EXPECT_EQ(ReqError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n"),
            Error::kContentLengthWithTransferEncoding);
  EXPECT_EQ(ReqError("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                     "Content-Length: 3\r\n\r\n"),
            Error::kContentLengthWithTransferEncoding);
}

TEST(ParseRequest, Host) {
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nX: a\r\n\r\n"), Error::kMissingHost);
  EXPECT_EQ(ReqError("GET http://a/ HTTP/1.1\r\n\r\n"), Error::kMissingHost);
  EXPECT_EQ(ReqError("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), Error::kDuplicateHost);
  for (const char* v : {"a b", "a/b", "u@a", "a:x", "a:1:2", "[::1", "a?", "a#"}) {
    std::string s = std::string("GET / HTTP/1.1\r\nHost: ") + v + "\r\n\r\n";
    EXPECT_EQ(ReqError(s), Error::kBadHost) << v;
  }
  for (const char* v : {"a", "a.b-c_d~e", "a:80", "127.0.0.1:8080", "[::1]:443", "[::1]", ""}) {
    std::string s = std::string("GET / HTTP/1.1\r\nHost: ") + v + "\r\n\r\n";
    Req r = ParseReq(s);
    EXPECT_EQ(r.status, Status::kDone) << v;
    EXPECT_EQ(r.head.host, v);
  }
  Req r = ParseReq("GET / HTTP/1.0\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.host, "");
  EXPECT_EQ(r.head.version_minor, 0);
}

TEST(ParseRequest, ConnectionSemantics) {
  Req r = ParseReq("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_FALSE(r.head.keep_alive);
  r = ParseReq("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n");
  EXPECT_FALSE(r.head.keep_alive);
  r = ParseReq("GET / HTTP/1.0\r\n\r\n");
  EXPECT_FALSE(r.head.keep_alive);
  r = ParseReq("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
  EXPECT_TRUE(r.head.keep_alive);
  r = ParseReq("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_TRUE(r.head.upgrade);
  r = ParseReq("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_FALSE(r.head.upgrade);
  r = ParseReq("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n");
  EXPECT_FALSE(r.head.upgrade);
  r = ParseReq("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
  EXPECT_TRUE(r.head.expect_continue);
}

TEST(ParseRequest, HopByHop) {
  Req r = ParseReq(
      "GET / HTTP/1.1\r\n"
      "Host: a\r\n"                         // 0
      "Connection: x-foo, close, Host\r\n"  // 1
      "Keep-Alive: 5\r\n"                   // 2
      "Proxy-Connection: x\r\n"             // 3
      "TE: trailers\r\n"                    // 4
      "Trailer: x\r\n"                      // 5
      "Upgrade: h2c\r\n"                    // 6
      "X-Foo: 1\r\n"                        // 7
      "Accept: */*\r\n"                     // 8
      "x-foo: 2\r\n"                        // 9
      "\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  std::vector<bool> want = {false, true, true, true, true, true, true, true, false, true};
  for (size_t i = 0; i < want.size(); i++)
    EXPECT_EQ(IsHopByHop(r.head.hop_by_hop, i), want[i]) << i;
  // Content-Length named by Connection stays end-to-end.
  r = ParseReq(
      "POST / HTTP/1.1\r\nHost: a\r\nConnection: content-length\r\nContent-Length: 1\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_FALSE(IsHopByHop(r.head.hop_by_hop, 2));
}

TEST(ParseRequest, HopByHopBeyond64) {
  std::string s = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 98; i++) s += "X-" + std::to_string(i) + ": v\r\n";
  s += "Connection: x-70\r\n\r\n";
  Req r = ParseReq(s);
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_TRUE(IsHopByHop(r.head.hop_by_hop, 71));
  EXPECT_TRUE(IsHopByHop(r.head.hop_by_hop, 99));
  EXPECT_FALSE(IsHopByHop(r.head.hop_by_hop, 70));
}

TEST(ParseRequest, Limits) {
  Limits l;
  l.max_request_line_bytes = 20;
  std::string ok = "GET /0123456789 HTTP/1.1\r\nHost: a\r\n\r\n";  // line exactly 24 > 20
  EXPECT_EQ(ParseReq(ok, l).error, Error::kRequestLineTooLong);
  l.max_request_line_bytes = 24;
  EXPECT_EQ(ParseReq(ok, l).status, Status::kDone);
  // Detected while incomplete.
  l.max_request_line_bytes = 20;
  EXPECT_EQ(ParseReq("GET /0123456789012345678", l).error, Error::kRequestLineTooLong);
  EXPECT_EQ(ParseReq("GET /01234567890123", l).status, Status::kNeedMore);

  Limits h;
  h.max_header_bytes = static_cast<uint32_t>(ok.size());
  EXPECT_EQ(ParseReq(ok, h).status, Status::kDone);
  h.max_header_bytes--;
  EXPECT_EQ(ParseReq(ok, h).error, Error::kHeadersTooLarge);
  EXPECT_EQ(ParseReq(ok.substr(0, ok.size() - 1), h).error, Error::kHeadersTooLarge);
  EXPECT_EQ(ParseReq(ok.substr(0, ok.size() - 2), h).status, Status::kNeedMore);

  Limits m;
  m.max_headers = 2;
  EXPECT_EQ(ParseReq("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n", m).status, Status::kDone);
  EXPECT_EQ(ParseReq("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", m).error,
            Error::kTooManyHeaders);
  Header small[1];
  RequestHead head;
  Error e;
  EXPECT_EQ(ParseRequest("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n", Limits(), small, &head, &e),
            Status::kError);
  EXPECT_EQ(e, Error::kTooManyHeaders);
}

// Every prefix of a valid head is kNeedMore; the whole gives the same result as always.
TEST(ParseRequest, IncrementalEverySplit) {
  const std::string cases[] = {
      std::string(kSimple),
      "\r\nPOST http://a.b/c HTTP/1.0\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\n",
      "PUT /x HTTP/1.1\r\nHost: h:1\r\nTransfer-Encoding: chunked\r\nX-Long: "
      "0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: a\r\nA:\r\n\r\n",
  };
  for (const std::string& s : cases) {
    Req full = ParseReq(s);
    ASSERT_EQ(full.status, Status::kDone) << s;
    for (size_t k = 0; k < s.size(); k++) {
      Req part = ParseReq(std::string_view(s).substr(0, k));
      EXPECT_EQ(part.status, Status::kNeedMore) << "split " << k << " of " << s;
    }
  }
}

TEST(ParseRequest, ErrorsAreEarlyAndPrefixConsistent) {
  const std::string bad[] = {
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
      "GET / HTTP/1.1\r\nX: a\r\n\r\n",
      "GET /\x01 HTTP/1.1\r\n\r\n",
  };
  for (const std::string& s : bad) {
    Req full = ParseReq(s);
    ASSERT_EQ(full.status, Status::kError);
    for (size_t k = 0; k < s.size(); k++) {
      Req part = ParseReq(std::string_view(s).substr(0, k));
      if (part.status != Status::kNeedMore) {
        EXPECT_EQ(part.status, Status::kError);
        EXPECT_EQ(part.error, full.error);
      }
    }
  }
}

TEST(ParseResponse, Framing) {
  Resp r = ParseResp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.status, 200);
  EXPECT_EQ(r.head.reason, "OK");
  EXPECT_EQ(r.head.body, BodyKind::kContentLength);
  EXPECT_EQ(r.head.content_length, 5u);
  EXPECT_EQ(r.head.head_bytes, 38u);
  EXPECT_TRUE(r.head.keep_alive);

  r = ParseResp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_EQ(r.head.body, BodyKind::kChunked);
  r = ParseResp("HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(r.head.body, BodyKind::kCloseDelimited);
  EXPECT_FALSE(r.head.keep_alive);
  r = ParseResp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", Method::kHead);
  EXPECT_EQ(r.head.body, BodyKind::kNone);
  r = ParseResp("HTTP/1.1 200 Connection established\r\n\r\n", Method::kConnect);
  EXPECT_EQ(r.head.body, BodyKind::kNone);
  for (int code : {100, 101, 103, 204, 304}) {
    std::string s = "HTTP/1.1 " + std::to_string(code) + " X\r\nContent-Length: 5\r\n\r\n";
    r = ParseResp(s);
    ASSERT_EQ(r.status, Status::kDone);
    EXPECT_EQ(r.head.body, BodyKind::kNone) << code;
  }
  r = ParseResp("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n");
  EXPECT_FALSE(r.head.keep_alive);
  r = ParseResp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n");
  EXPECT_TRUE(r.head.keep_alive);
  r = ParseResp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\n");
  EXPECT_FALSE(r.head.keep_alive);
  r = ParseResp(
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  EXPECT_TRUE(r.head.upgrade);
  EXPECT_TRUE(IsHopByHop(r.head.hop_by_hop, 0));
  EXPECT_TRUE(IsHopByHop(r.head.hop_by_hop, 1));
}

TEST(ParseResponse, StatusLine) {
  Resp r = ParseResp("HTTP/1.1 200 \r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.reason, "");
  r = ParseResp("HTTP/1.1 404\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.head.status, 404);
  r = ParseResp("HTTP/1.1 200 Ok \xe9t\xe9\r\n\r\n");
  ASSERT_EQ(r.status, Status::kDone);

  EXPECT_EQ(ParseResp("HTTP/1.1 20 OK\r\n\r\n").error, Error::kBadStatusLine);
  EXPECT_EQ(ParseResp("HTTP/1.1 2000 OK\r\n\r\n").error, Error::kBadStatusLine);
  EXPECT_EQ(ParseResp("HTTP/1.1 099 OK\r\n\r\n").error, Error::kBadStatusLine);
  EXPECT_EQ(ParseResp("HTTP/1.1  200 OK\r\n\r\n").error, Error::kBadStatusLine);
  EXPECT_EQ(ParseResp("HTTP/1.1 200 O\x01K\r\n\r\n").error, Error::kBadStatusLine);
  EXPECT_EQ(ParseResp("HTTP/1.1 200 OK\n\r\n").error, Error::kBareLf);
  EXPECT_EQ(ParseResp("HTTP/2.0 200 OK\r\n\r\n").error, Error::kUnsupportedVersion);
  EXPECT_EQ(ParseResp("ICE/1.1 200 OK\r\n\r\n").error, Error::kBadStatusLine);
  EXPECT_EQ(
      ParseResp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n").error,
      Error::kContentLengthWithTransferEncoding);
  EXPECT_EQ(ParseResp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n").error,
            Error::kDuplicateContentLength);
  EXPECT_EQ(ParseResp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").error,
            Error::kBadTransferEncoding);
  EXPECT_EQ(ParseResp("HTTP/1.1 200 OK\r\n folded\r\n\r\n").error, Error::kObsFold);
}

TEST(ParseResponse, IncrementalEverySplit) {
  std::string s = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n";
  for (size_t k = 0; k < s.size(); k++) {
    EXPECT_EQ(ParseResp(std::string_view(s).substr(0, k)).status, Status::kNeedMore) << k;
  }
  EXPECT_EQ(ParseResp(s).status, Status::kDone);
}

// --- ChunkedScanner ---

struct ChunkResult {
  Status status;
  Error error;
  size_t consumed;
  uint64_t data_bytes;
};

ChunkResult ScanAll(std::string_view s) {
  ChunkedScanner c;
  ChunkResult r{};
  r.status = c.Feed(s, &r.consumed, &r.error);
  r.data_bytes = c.data_bytes();
  return r;
}

// Feeds one byte at a time; returns the total consumed and the final status.
ChunkResult ScanBytewise(std::string_view s) {
  ChunkedScanner c;
  ChunkResult r{};
  r.status = Status::kNeedMore;
  for (size_t i = 0; i < s.size() && r.status == Status::kNeedMore; i++) {
    size_t used = 0;
    r.status = c.Feed(s.substr(i, 1), &used, &r.error);
    r.consumed += used;
  }
  r.data_bytes = c.data_bytes();
  return r;
}

TEST(ChunkedScanner, Valid) {
  const std::string cases[] = {
      "5\r\nhello\r\n0\r\n\r\n",
      "a\r\n0123456789\r\nA\r\n0123456789\r\n000\r\n\r\n",
      "5;ext\r\nhello\r\n0\r\n\r\n",
      "5;a=b;c=\"q \\\" x\"\r\nhello\r\n0;last\r\n\r\n",
      "5 ;a = b\r\nhello\r\n0\r\n\r\n",
      "5\r\nhello\r\n0\r\nTrailer-A: x y\r\nB:\r\n\r\n",
      "0\r\n\r\n",
      "FFFF\r\n" + std::string(0xFFFF, 'x') + "\r\n0\r\n\r\n",
  };
  for (const std::string& s : cases) {
    ChunkResult a = ScanAll(s + "GET / HTTP/1.1\r\n");
    EXPECT_EQ(a.status, Status::kDone) << s;
    EXPECT_EQ(a.consumed, s.size()) << s;
    ChunkResult b = ScanBytewise(s + "XYZ");
    EXPECT_EQ(b.status, Status::kDone) << s;
    EXPECT_EQ(b.consumed, s.size()) << s;
    EXPECT_EQ(a.data_bytes, b.data_bytes);
  }
  EXPECT_EQ(ScanAll("a\r\n0123456789\r\n5\r\nhello\r\n0\r\n\r\n").data_bytes, 15u);
}

TEST(ChunkedScanner, Invalid) {
  const std::pair<std::string, Error> cases[] = {
      {"\r\n", Error::kBadChunkSize},
      {"x\r\n", Error::kBadChunkSize},
      {"-5\r\n", Error::kBadChunkSize},
      {"0x5\r\n", Error::kBadChunkSize},
      {"5\nhello\r\n", Error::kBadChunkSize},
      {"5\rhello", Error::kBadChunkSize},
      {"5 \r\nhello\r\n0\r\n\r\n", Error::kBadChunkExtension},
      {"12345678901234567\r\n", Error::kBadChunkSize},
      {"5;\r\n", Error::kBadChunkExtension},
      {"5;a=\r\n", Error::kBadChunkExtension},
      {"5;a=\"x\r\n", Error::kBadChunkExtension},
      {"5;a=\"x\"y\r\n", Error::kBadChunkExtension},
      {"5;a\x01\r\n", Error::kBadChunkExtension},
      {"5;a\nb\r\n", Error::kBadChunkExtension},
      {"5;a \r\n", Error::kBadChunkExtension},
      {"5\r\nhelloX\r\n", Error::kBadChunkTerminator},
      {"5\r\nhello\n0\r\n\r\n", Error::kBadChunkTerminator},
      {"5\r\nhello\r\r", Error::kBadChunkTerminator},
      {"0\r\nX : y\r\n\r\n", Error::kBadTrailer},
      {"0\r\nX: y\n\r\n", Error::kBadTrailer},
      {"0\r\nX: y\r\n z\r\n\r\n", Error::kBadTrailer},
      {"0\r\n\n", Error::kBadTrailer},
      {"0\r\n\r\r", Error::kBadTrailer},
      {"0\r\nX: \x7f\r\n\r\n", Error::kBadTrailer},
      {"0;" + std::string(5000, 'a') + "\r\n", Error::kBadChunkExtension},
      {"0\r\nX: " + std::string(5000, 'a') + "\r\n", Error::kBadTrailer},
  };
  for (const auto& [s, want] : cases) {
    ChunkResult a = ScanAll(s);
    EXPECT_EQ(a.status, Status::kError) << s;
    EXPECT_EQ(a.error, want) << s;
    ChunkResult b = ScanBytewise(s);
    EXPECT_EQ(b.status, Status::kError) << s;
    EXPECT_EQ(b.error, want) << s;
  }
}

TEST(ChunkedScanner, ErrorIsStickyAndDoneStaysDone) {
  ChunkedScanner c;
  size_t used;
  Error e = Error::kNone;
  EXPECT_EQ(c.Feed("z", &used, &e), Status::kError);
  e = Error::kNone;
  EXPECT_EQ(c.Feed("0\r\n\r\n", &used, &e), Status::kError);
  EXPECT_EQ(e, Error::kBadChunkSize);
  c.Reset();
  EXPECT_EQ(c.Feed("0\r\n\r\n", &used, &e), Status::kDone);
  EXPECT_EQ(c.Feed("more", &used, &e), Status::kDone);
  EXPECT_EQ(used, 0u);
}

TEST(ChunkedScanner, SixteenDigitsMax) {
  ChunkedScanner c;
  size_t used;
  Error e;
  EXPECT_EQ(c.Feed("ffffffffffffffff\r\nabc", &used, &e), Status::kNeedMore);
  EXPECT_EQ(used, 21u);
  EXPECT_EQ(c.data_bytes(), 0xffffffffffffffffu);
}

// --- SIMD levels ---

TEST(Simd, ScannersAgreeOnAllBytes) {
  std::string buf(200, 'a');
  for (int b = 0; b < 256; b++) {
    for (size_t pos : {0u, 5u, 15u, 16u, 31u, 32u, 47u, 63u, 64u, 100u, 199u}) {
      std::string s = buf;
      s[pos] = static_cast<char>(b);
      for (size_t start : {0u, 1u, 7u}) {
        const char* p = s.data() + start;
        const char* e = s.data() + s.size();
        const char* v = internal::ScanFieldValueScalar(p, e);
        EXPECT_EQ(internal::ScanFieldValueSse2(p, e), v);
        const char* t = internal::ScanTargetScalar(p, e);
        EXPECT_EQ(internal::ScanTargetSse2(p, e), t);
        if (ForceSimdLevelForTesting("avx2")) {
          EXPECT_EQ(internal::ScanFieldValueAvx2(p, e), v);
          EXPECT_EQ(internal::ScanTargetAvx2(p, e), t);
        }
      }
    }
  }
}

TEST(Simd, ParseResultsIdenticalAtEveryLevel) {
  std::string long_value(300, 'v');
  long_value[257] = '\x01';
  const std::string inputs[] = {
      std::string(kSimple),
      "GET /" + std::string(100, 'p') + " HTTP/1.1\r\nHost: a\r\nX: " + std::string(70, 'y') +
          "\t z\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: " + long_value + "\r\n\r\n",
      "GET /" + std::string(40, 'p') + "\x7f HTTP/1.1\r\n\r\n",
  };
  const char* levels[] = {"scalar", "sse2", "avx2"};
  for (const std::string& s : inputs) {
    Req ref;
    bool have_ref = false;
    for (const char* level : levels) {
      if (!ForceSimdLevelForTesting(level)) continue;
      EXPECT_STREQ(SimdLevel(), level);
      Req r = ParseReq(s);
      if (!have_ref) {
        ref = r;
        have_ref = true;
        continue;
      }
      EXPECT_EQ(r.status, ref.status) << level;
      EXPECT_EQ(r.error, ref.error) << level;
      EXPECT_EQ(r.head.head_bytes, ref.head.head_bytes) << level;
      EXPECT_EQ(r.head.target, ref.head.target) << level;
    }
  }
  EXPECT_FALSE(ForceSimdLevelForTesting("neon"));
}

TEST(Errors, NamesAndStatuses) {
  for (int i = 0; i < static_cast<int>(Error::kCount); i++) {
    EXPECT_STRNE(ErrorName(static_cast<Error>(i)), "unknown") << i;
  }
  EXPECT_STREQ(ErrorName(Error::kContentLengthWithTransferEncoding),
               "content_length_with_transfer_encoding");
  EXPECT_EQ(ErrorHttpStatus(Error::kRequestLineTooLong), 414);
  EXPECT_EQ(ErrorHttpStatus(Error::kHeadersTooLarge), 431);
  EXPECT_EQ(ErrorHttpStatus(Error::kTooManyHeaders), 431);
  EXPECT_EQ(ErrorHttpStatus(Error::kUnsupportedVersion), 505);
  EXPECT_EQ(ErrorHttpStatus(Error::kObsFold), 400);
}

}  // namespace
}  // namespace zproxy::http1
