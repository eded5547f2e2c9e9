// The HTTP/1 codec without sockets: bytes in -> events (head, data, end, error) and
// neutral heads -> bytes. Every input is also fed in small pieces, as it arrives from a
// socket, and must give the same events.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dataplane/codec/http1/body_decoder.h"
#include "dataplane/codec/http1/client_stream.h"
#include "dataplane/codec/http1/server_stream.h"

namespace zproxy::codec::http1 {
namespace {

using zproxy::http1::ErrorName;

std::string FramingName(http::Framing f) {
  switch (f) {
    case http::Framing::kNone:
      return "none";
    case http::Framing::kLength:
      return "length";
    case http::Framing::kChunked:
      return "chunked";
    case http::Framing::kUntilClose:
      return "close";
  }
  return "?";
}

// Runs a body decoder over `in` (already without the head) in pieces of `piece` bytes;
// appends "data <bytes>" per step with data, then "end" or "error <reason>". Returns the
// bytes consumed.
size_t DriveBody(BodyDecoder& body, std::string_view in, size_t piece, bool peer_closes,
                 std::string* log) {
  std::string data;
  size_t pos = 0;
  size_t avail = 0;
  while (!body.done()) {
    if (pos == avail) {
      if (avail == in.size()) break;
      avail = std::min(in.size(), avail + piece);
    }
    BodyStep s = body.Feed(in.substr(pos, avail - pos));
    if (s.status == Status::kError) {
      *log += "error ";
      *log += ErrorName(s.error);
      *log += "\n";
      return pos;
    }
    data.append(s.data);
    pos += s.consumed;
    if (s.consumed == 0 && s.status != Status::kDone && pos == avail && avail == in.size()) break;
  }
  if (!body.done() && peer_closes && body.EndsAtClose()) body.FinishAtClose();
  if (!data.empty()) *log += "data " + data + "\n";
  *log += body.done() ? "end\n" : "incomplete\n";
  return pos;
}

// The server side over one request: head (accumulating pieces until it decodes), body.
std::string ServerEvents(std::string_view wire, size_t piece, std::string* rest = nullptr) {
  http::Field storage[64];
  RequestHeadEvent ev;
  Error err = Error::kNone;
  size_t avail = 0;
  Status st = Status::kNeedMore;
  while (st == Status::kNeedMore && avail < wire.size()) {
    avail = std::min(wire.size(), avail + piece);
    st = DecodeRequestHead(wire.substr(0, avail), Limits{}, storage, "http", &ev, &err);
  }
  if (st == Status::kNeedMore) return "need-more\n";
  if (st == Status::kError) return std::string("error ") + ErrorName(err) + "\n";
  const http::RequestHead& h = ev.head;
  std::string log = "head " + std::string(h.method) + " " + std::string(h.path_and_query) + " " +
                    std::string(h.protocol) + " authority=" + std::string(h.authority) +
                    " body=" + FramingName(h.body.framing);
  if (h.body.framing == http::Framing::kLength) log += ":" + std::to_string(h.body.length);
  if (!h.upgrade.empty()) log += " upgrade=" + std::string(h.upgrade);
  if (!ev.keep_alive) log += " close";
  for (const http::Field& f : h.fields)
    log += " [" + std::string(f.name) + "=" + std::string(f.value) + "]";
  log += "\n";
  ServerStream s;
  s.Begin(ev);
  size_t used = DriveBody(s.request_body(), wire.substr(ev.consumed), piece, false, &log);
  if (rest != nullptr) *rest = std::string(wire.substr(ev.consumed + used));
  return log;
}

// Same result whatever the pieces: byte by byte, a few bytes, all at once.
std::string Server(std::string_view wire, std::string* rest = nullptr) {
  std::string whole = ServerEvents(wire, wire.size() + 1, rest);
  for (size_t piece : {1, 3, 7}) {
    std::string r2;
    EXPECT_EQ(ServerEvents(wire, piece, &r2), whole) << "piece " << piece;
    if (rest != nullptr) EXPECT_EQ(r2, *rest);
  }
  return whole;
}

// The client side over one response to `method`.
std::string ClientEvents(std::string_view wire, http::Method method, bool upgrade, bool decode,
                         size_t piece, bool peer_closes) {
  http::Field storage[64];
  ClientStream c;
  c.Begin(method, upgrade);
  std::string log;
  size_t off = 0;
  while (true) {
    ResponseHeadEvent ev;
    Error err = Error::kNone;
    size_t avail = off;
    Status st = Status::kNeedMore;
    while (st == Status::kNeedMore && avail < wire.size()) {
      avail = std::min(wire.size(), avail + piece);
      st = c.DecodeResponseHead(wire.substr(off, avail - off), Limits{}, storage, &ev, &err);
    }
    if (st == Status::kNeedMore) return log + "need-more\n";
    if (st == Status::kError) return log + "error " + ErrorName(err) + "\n";
    log += "head " + std::to_string(ev.head.status) + " body=" + FramingName(ev.head.body.framing);
    if (!ev.head.upgrade.empty()) log += " upgrade=" + std::string(ev.head.upgrade);
    if (!ev.keep_alive) log += " close";
    for (const http::Field& f : ev.head.fields) log += " [" + std::string(f.name) + "]";
    log += "\n";
    off += ev.consumed;
    if (ev.head.interim()) {
      if (ev.head.status == 101) return log;
      continue;
    }
    c.StartResponseBody(ev, decode);
    DriveBody(c.response_body(), wire.substr(off), piece, peer_closes, &log);
    return log;
  }
}

std::string Client(std::string_view wire, http::Method method = http::Method::kGet,
                   bool upgrade = false, bool decode = false, bool peer_closes = true) {
  std::string whole = ClientEvents(wire, method, upgrade, decode, wire.size() + 1, peer_closes);
  for (size_t piece : {1, 5}) {
    EXPECT_EQ(ClientEvents(wire, method, upgrade, decode, piece, peer_closes), whole)
        << "piece " << piece;
  }
  return whole;
}

// --- server side: requests

TEST(ServerCodec, GetWithoutBody) {
  EXPECT_EQ(Server("GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"),
            "head GET /a?b=1 HTTP/1.1 authority=example.com body=none [Accept=*/*]\nend\n");
}

TEST(ServerCodec, ContentLengthBodyAndPipelinedRest) {
  std::string rest;
  EXPECT_EQ(
      Server("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n",
             &rest),
      "head POST /p HTTP/1.1 authority=h body=length:5 [Content-Length=5]\ndata hello\nend\n");
  EXPECT_EQ(rest, "GET / HTTP/1.1\r\n");  // the next request stays in the input
}

TEST(ServerCodec, ChunkedBodyIsForwardedVerbatimUpToItsEnd) {
  std::string rest;
  std::string wire =
      "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n0\r\nTrailer-A: x\r\n\r\nNEXT";
  EXPECT_EQ(Server(wire, &rest),
            "head POST /u HTTP/1.1 authority=h body=chunked\n"
            "data 5;ext=1\r\nhello\r\n0\r\nTrailer-A: x\r\n\r\n\nend\n");
  EXPECT_EQ(rest, "NEXT");
}

TEST(ServerCodec, ConnectionSpecificFieldsAreConsumed) {
  EXPECT_EQ(Server("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Custom\r\n"
                   "Keep-Alive: 5\r\nX-Custom: secret\r\nTE: trailers\r\nProxy-Connection: x\r\n"
                   "X-Other: kept\r\n\r\n"),
            "head GET / HTTP/1.1 authority=h body=none [X-Other=kept]\nend\n");
}

TEST(ServerCodec, UpgradeIsReportedNotForwardedAsField) {
  EXPECT_EQ(Server("GET /chat HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
                   "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n"),
            "head GET /chat HTTP/1.1 authority=h body=none upgrade=websocket "
            "[Sec-WebSocket-Key=k]\nend\n");
  // Upgrade without "Connection: upgrade" asks for nothing (and is still hop-by-hop).
  EXPECT_EQ(Server("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"),
            "head GET / HTTP/1.1 authority=h body=none\nend\n");
}

TEST(ServerCodec, Http10KeepAliveRules) {
  EXPECT_EQ(Server("GET / HTTP/1.0\r\n\r\n"),
            "head GET / HTTP/1.0 authority= body=none close\nend\n");
  EXPECT_EQ(Server("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
            "head GET / HTTP/1.0 authority= body=none\nend\n");
  EXPECT_EQ(Server("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"),
            "head GET / HTTP/1.1 authority=h body=none close\nend\n");
}

TEST(ServerCodec, AbsoluteFormGivesAuthorityAndOriginForm) {
  EXPECT_EQ(Server("GET http://h2.example/p?q HTTP/1.1\r\nHost: other\r\n\r\n"),
            "head GET /p?q HTTP/1.1 authority=h2.example body=none\nend\n");
  EXPECT_EQ(Server("GET http://h2.example HTTP/1.1\r\nHost: h2.example\r\n\r\n"),
            "head GET / HTTP/1.1 authority=h2.example body=none\nend\n");
  // RFC 9112 §3.2.4: an OPTIONS to an absolute URI with an empty path and no query goes
  // on in asterisk-form; with a query, origin-form "/?q" (the encoder adds the "/").
  EXPECT_EQ(Server("OPTIONS http://www.example.org:8001 HTTP/1.1\r\nHost: x\r\n\r\n"),
            "head OPTIONS * HTTP/1.1 authority=www.example.org:8001 body=none\nend\n");
  EXPECT_EQ(Server("GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n"),
            "head GET ?q=1 HTTP/1.1 authority=h body=none\nend\n");
  http::RequestHead req;
  req.method = "GET";
  req.authority = "h";
  req.path_and_query = "?q=1";
  req.protocol = "HTTP/1.1";
  char out[256];
  size_t n = EncodeRequestHead(req, out, sizeof(out));
  EXPECT_EQ(std::string_view(out, n), "GET /?q=1 HTTP/1.1\r\nHost: h\r\n\r\n");
}

TEST(ServerCodec, ConnectAndAsteriskTargets) {
  EXPECT_EQ(Server("CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n"),
            "head CONNECT 127.0.0.1:443 HTTP/1.1 authority=127.0.0.1:443 body=none\nend\n");
  EXPECT_EQ(Server("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
            "head OPTIONS * HTTP/1.1 authority=h body=none\nend\n");
}

TEST(ServerCodec, AmbiguousFramingIsAnError) {
  EXPECT_EQ(Server("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"),
            "error content_length_with_transfer_encoding\n");
  EXPECT_EQ(Server("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            "error " + std::string(ErrorName(Error::kDuplicateContentLength)) + "\n");
  EXPECT_EQ(Server("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
            "error " + std::string(ErrorName(Error::kBadTransferEncoding)) + "\n");
  EXPECT_EQ(Server("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n"),
            "error " + std::string(ErrorName(Error::kObsFold)) + "\n");
  EXPECT_EQ(Server("GET / HTTP/1.1\nHost: h\r\n\r\n"),
            "error " + std::string(ErrorName(Error::kBareLf)) + "\n");
  EXPECT_EQ(Server("GET / HTTP/1.1\r\n\r\n"),
            "error " + std::string(ErrorName(Error::kMissingHost)) + "\n");
  EXPECT_EQ(Server("GET / HTTP/2.0\r\nHost: h\r\n\r\n"),
            "error " + std::string(ErrorName(Error::kUnsupportedVersion)) + "\n");
}

TEST(ServerCodec, MalformedChunksStopTheBody) {
  EXPECT_EQ(Server("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            "head POST / HTTP/1.1 authority=h body=chunked\nerror " +
                std::string(ErrorName(Error::kBadChunkSize)) + "\n");
  EXPECT_EQ(Server("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "3\r\nabcX\r\n"),
            "head POST / HTTP/1.1 authority=h body=chunked\nerror " +
                std::string(ErrorName(Error::kBadChunkTerminator)) + "\n");
}

TEST(ServerCodec, IncompleteHeadNeedsMore) {
  EXPECT_EQ(Server("GET / HTTP/1.1\r\nHost: h\r\n"), "need-more\n");
}

TEST(ServerCodec, BodyLimitsSeeDataBytes) {
  RequestHeadEvent ev;
  http::Field storage[8];
  Error err;
  std::string wire = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
  ASSERT_EQ(DecodeRequestHead(wire, Limits{}, storage, "http", &ev, &err), Status::kDone);
  ServerStream s;
  s.Begin(ev);
  BodyStep step = s.request_body().Feed("a\r\n0123456789\r\n");
  EXPECT_EQ(step.status, Status::kNeedMore);
  EXPECT_EQ(s.request_body().data_bytes(), 10u);  // chunk data, not framing
}

TEST(ServerCodec, RequestLineForTheLog) {
  RequestHeadEvent ev;
  http::Field storage[8];
  Error err;
  ASSERT_EQ(DecodeRequestHead("GET /x?y HTTP/1.0\r\n\r\n", Limits{}, storage, "http", &ev, &err),
            Status::kDone);
  char line[160];
  EXPECT_EQ(RequestLine(ev.head, line, sizeof(line)), "GET /x?y HTTP/1.0");
  char tiny[8];
  EXPECT_EQ(RequestLine(ev.head, tiny, sizeof(tiny)), "GET /x?");
}

// --- server side: responses out

std::string Respond(const char* request, const char* upstream_response, bool close) {
  http::Field req_storage[16], resp_storage[16];
  RequestHeadEvent ev;
  Error err;
  EXPECT_EQ(DecodeRequestHead(request, Limits{}, req_storage, "http", &ev, &err), Status::kDone);
  ServerStream down;
  down.Begin(ev);
  ClientStream up;
  up.Begin(ev.head.method_id, false);
  ResponseHeadEvent resp;
  EXPECT_EQ(up.DecodeResponseHead(upstream_response, Limits{}, resp_storage, &resp, &err),
            Status::kDone);
  char out[1024];
  size_t n = down.EncodeResponseHead(resp.head, close, out, sizeof(out));
  std::string s(out, n);
  if (down.decode_response_body()) s += "<decoded>";
  if (down.response_framed_by_close()) s += "<until-close>";
  if (!down.keep_alive()) s += "<close>";
  return s;
}

TEST(ServerCodecResponse, KeepsFramingAndFields) {
  EXPECT_EQ(Respond("GET / HTTP/1.1\r\nHost: h\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n", false),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n");
  EXPECT_EQ(
      Respond("GET / HTTP/1.1\r\nHost: h\r\n\r\n",
              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: 5\r\n\r\n", false),
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST(ServerCodecResponse, CloseDelimitedClosesTheClient) {
  EXPECT_EQ(Respond("GET / HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 200 OK\r\nX: y\r\n\r\n", false),
            "HTTP/1.1 200 OK\r\nX: y\r\nConnection: close\r\n\r\n<until-close><close>");
}

TEST(ServerCodecResponse, Http10ClientGetsDecodedBodyAndExplicitKeepAlive) {
  EXPECT_EQ(Respond("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n<decoded><until-close><close>");
  EXPECT_EQ(Respond("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(
      Respond("GET / HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false),
      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n<close>");
}

TEST(ServerCodecResponse, ProxyCloseIsDeclared) {
  EXPECT_EQ(Respond("GET / HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n", true),
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n<close>");
}

TEST(ServerCodecResponse, InterimAndSwitchingProtocols) {
  http::ResponseHead h;
  h.status = 103;
  h.reason = "Early Hints";
  http::Field link{"Link", "</s.css>; rel=preload"};
  h.fields = std::span<http::Field>(&link, 1);
  char out[256];
  size_t n = ServerStream::EncodeInterim(h, out, sizeof(out));
  EXPECT_EQ(std::string(out, n), "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
  h.status = 101;
  h.reason = "Switching Protocols";
  h.fields = {};
  h.upgrade = "websocket";
  n = ServerStream::EncodeInterim(h, out, sizeof(out));
  EXPECT_EQ(
      std::string(out, n),
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  RequestHeadEvent ev10;
  ev10.version_minor = 0;
  ServerStream s;
  s.Begin(ev10);
  EXPECT_FALSE(s.TakesInterim());
}

TEST(ServerCodecResponse, LocalResponse) {
  char out[256];
  size_t n = EncodeLocalResponse(404, "zproxy: no route\n", false, out, sizeof(out));
  EXPECT_EQ(std::string(out, n),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 17\r\n\r\n"
            "zproxy: no route\n");
  EXPECT_EQ(EncodeLocalResponse(404, "zproxy: no route\n", false, out, 10), 0u);
}

TEST(ServerCodecResponse, LocalResponseWithRetryAfter) {
  char out[256];
  size_t n = EncodeLocalResponse(429, "zproxy: rate limited\n", false, out, sizeof(out), 3);
  EXPECT_EQ(std::string(out, n),
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nRetry-After: 3\r\n"
            "Content-Length: 21\r\n\r\nzproxy: rate limited\n");
}

TEST(ServerCodecResponse, LocalResponseOfARoute) {
  char out[256];
  http::Field location[] = {{"Location", "https://a.example/x?y"}};
  LocalResponse r;
  r.status = 308;
  r.fields = location;
  size_t n = EncodeLocalResponse(r, out, sizeof(out));
  EXPECT_EQ(std::string(out, n),
            "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://a.example/x?y\r\n"
            "Content-Length: 0\r\n\r\n");
  LocalResponse head;
  head.status = 200;
  head.body = "pong\n";
  head.content_type = "text/x-pong";
  head.omit_body = true;
  head.close = true;
  n = EncodeLocalResponse(head, out, sizeof(out));
  EXPECT_EQ(std::string(out, n),
            "HTTP/1.1 200 OK\r\nContent-Type: text/x-pong\r\nContent-Length: 5\r\n"
            "Connection: close\r\n\r\n");
}

// --- client side: requests out

TEST(ClientCodec, RequestHeadFromNeutralHead) {
  http::Field fields[] = {{"Accept", "*/*"}, {"Content-Length", "3"}};
  http::RequestHead h;
  h.method = "POST";
  h.method_id = http::Method::kPost;
  h.path_and_query = "/x?y";
  h.protocol = "HTTP/1.1";
  h.authority = "svc.internal";
  h.fields = fields;
  h.body = {http::Framing::kLength, 3};
  char out[256];
  size_t n = EncodeRequestHead(h, out, sizeof(out));
  EXPECT_EQ(std::string(out, n),
            "POST /x?y HTTP/1.1\r\nHost: svc.internal\r\nAccept: */*\r\nContent-Length: 3\r\n\r\n");
  h.body = {http::Framing::kChunked, 0};
  h.fields = std::span<http::Field>(fields, 1);
  n = EncodeRequestHead(h, out, sizeof(out));
  EXPECT_EQ(std::string(out, n),
            "POST /x?y HTTP/1.1\r\nHost: svc.internal\r\nAccept: */*\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");
  h.body = {};
  h.upgrade = "websocket";
  h.fields = {};
  n = EncodeRequestHead(h, out, sizeof(out));
  EXPECT_EQ(std::string(out, n),
            "POST /x?y HTTP/1.1\r\nHost: svc.internal\r\nConnection: Upgrade\r\n"
            "Upgrade: websocket\r\n\r\n");
  h.upgrade = {};
  h.protocol = "HTTP/1.0";
  n = EncodeRequestHead(h, out, sizeof(out));
  EXPECT_EQ(std::string(out, n),
            "POST /x?y HTTP/1.0\r\nHost: svc.internal\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_EQ(EncodeRequestHead(h, out, 12), 0u);
}

// --- client side: responses in

TEST(ClientCodec, ContentLengthAndKeepAlive) {
  EXPECT_EQ(Client("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"),
            "head 200 body=length [Content-Length]\ndata hello\nend\n");
  EXPECT_EQ(Client("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            "head 200 body=none close [Content-Length]\nend\n");
  EXPECT_EQ(Client("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"),
            "head 200 body=length close [Content-Length]\ndata x\nend\n");
}

TEST(ClientCodec, NoBodyForHeadAnd204And304) {
  EXPECT_EQ(Client("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", http::Method::kHead),
            "head 200 body=none [Content-Length]\nend\n");
  EXPECT_EQ(Client("HTTP/1.1 204 No Content\r\n\r\n"), "head 204 body=none\nend\n");
  EXPECT_EQ(Client("HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"),
            "head 304 body=none [ETag]\nend\n");
}

TEST(ClientCodec, CloseDelimitedEndsAtThePeersClose) {
  EXPECT_EQ(Client("HTTP/1.1 200 OK\r\n\r\nall of it", http::Method::kGet, false, false, true),
            "head 200 body=close close\ndata all of it\nend\n");
  EXPECT_EQ(Client("HTTP/1.1 200 OK\r\n\r\npart", http::Method::kGet, false, false, false),
            "head 200 body=close close\ndata part\nincomplete\n");
}

TEST(ClientCodec, ChunkedVerbatimOrDecoded) {
  const char* wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  EXPECT_EQ(Client(wire), "head 200 body=chunked\ndata 3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\nend\n");
  EXPECT_EQ(Client(wire, http::Method::kGet, false, /*decode=*/true),
            "head 200 body=chunked\ndata abcde\nend\n");
  EXPECT_EQ(Client("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"),
            "head 200 body=chunked\ndata 3\r\nab\nincomplete\n");
}

TEST(ClientCodec, InterimResponsesComeFirst) {
  EXPECT_EQ(Client("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n"
                   "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz"),
            "head 100 body=none\nhead 103 body=none [Link]\nhead 200 body=length "
            "[Content-Length]\ndata z\nend\n");
}

TEST(ClientCodec, SwitchingProtocolsOnlyWhenAsked) {
  const char* wire =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Accept: a\r\n\r\n";
  EXPECT_EQ(Client(wire, http::Method::kGet, /*upgrade=*/true),
            "head 101 body=none upgrade=websocket [Sec-WebSocket-Accept]\n");
  EXPECT_EQ(Client(wire, http::Method::kGet, /*upgrade=*/false),
            "error " + std::string(ErrorName(Error::kBadStatusLine)) + "\n");
  EXPECT_EQ(Client("HTTP/1.1 101 Switching Protocols\r\n\r\n", http::Method::kGet, true),
            "error " + std::string(ErrorName(Error::kBadStatusLine)) + "\n");
}

TEST(ClientCodec, MalformedResponses) {
  EXPECT_EQ(Client("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            "error content_length_with_transfer_encoding\n");
  EXPECT_EQ(Client("HTTP/1.1 2000 OK\r\n\r\n"),
            "error " + std::string(ErrorName(Error::kBadStatusLine)) + "\n");
  EXPECT_EQ(Client("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n"),
            "head 200 body=chunked\nerror " + std::string(ErrorName(Error::kBadChunkSize)) + "\n");
}

TEST(BodyDecoder, LengthStopsAtTheEnd) {
  BodyDecoder b;
  b.Start(http::Body{http::Framing::kLength, 4}, false);
  BodyStep s = b.Feed("abcdef");
  EXPECT_EQ(s.status, Status::kDone);
  EXPECT_EQ(s.consumed, 4u);
  EXPECT_EQ(s.data, "abcd");
  EXPECT_TRUE(b.done());
  BodyDecoder empty;
  empty.Start(http::Body{http::Framing::kLength, 0}, false);
  EXPECT_TRUE(empty.done());
}

}  // namespace
}  // namespace zproxy::codec::http1

namespace zproxy::codec::http1 {
namespace {

// Decoded chunked bodies hand up their trailer lines (for HTTP/2 trailers), split anywhere.
TEST(BodyDecoder, DecodedChunkedGivesTrailerLines) {
  std::string wire = "5\r\nhello\r\n0\r\nX-Sum: abc\r\nGrpc-Status: 0\r\n\r\n";
  for (size_t piece : {1, 3, 7, 100}) {
    BodyDecoder d;
    d.Start(http::Body{http::Framing::kChunked, 0}, true);
    std::string data, trailer;
    size_t off = 0;
    while (!d.done() && off < wire.size()) {
      size_t avail = std::min(wire.size(), off + piece) - off;
      std::string_view in(wire.data() + off, avail);
      BodyStep s = d.Feed(in);
      ASSERT_NE(s.status, Status::kError);
      data += s.data;
      trailer += s.trailer;
      off += s.consumed;
    }
    EXPECT_TRUE(d.done()) << piece;
    EXPECT_EQ(data, "hello") << piece;
    EXPECT_EQ(trailer, "X-Sum: abc\r\nGrpc-Status: 0\r\n") << piece;
  }
}

}  // namespace
}  // namespace zproxy::codec::http1
