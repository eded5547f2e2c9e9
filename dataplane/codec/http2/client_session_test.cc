// Both sides of the HTTP/2 codec against each other, in memory: a request block out of
// the client side becomes the server side's neutral head; the server's response, body
// and trailers come back to the client side; resets, SETTINGS and GOAWAY are reported.
#include "dataplane/codec/http2/client_session.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "dataplane/codec/http2/request_block.h"
#include "dataplane/codec/http2/server_session.h"

namespace zproxy::codec::http2 {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct Space {
  HeaderSpace Get() { return {buf, sizeof(buf), 0}; }
  alignas(16) char buf[65536 + 8192];
};

// The upstream: records requests, answers what the test says.
struct Server : ServerHandler {
  HeaderSpace AcquireHeaderSpace() override { return space.Get(); }
  void ReleaseHeaderSpace(HeaderSpace) override {}
  uint32_t OnRequestHead(int32_t stream, http::RequestHead& head, bool end) override {
    auto& r = requests[stream];
    r.emplace_back(":method", head.method);
    r.emplace_back(":authority", head.authority);
    r.emplace_back(":path", head.path_and_query);
    for (auto& f : head.fields) r.emplace_back(f.name, f.value);
    ended[stream] = end;
    return static_cast<uint32_t>(stream);
  }
  uint32_t OnRequestRefused(int32_t stream, int, std::string_view) override {
    return static_cast<uint32_t>(stream);
  }
  void OnRequestData(uint32_t stream, std::string_view d) override { bodies[stream] += d; }
  void OnRequestEnd(uint32_t stream) override { ended[stream] = true; }
  void OnStreamClose(uint32_t, uint32_t) override {}
  bool WriteFrames(std::string_view b) override {
    out += b;
    return true;
  }
  size_t ResponseDataReady(uint32_t stream, size_t max, bool* last) override {
    size_t n = std::min(max, resp_body[stream].size());
    *last = n == resp_body[stream].size();
    return n;
  }
  std::span<const http::Field> ResponseTrailers(uint32_t stream) override {
    return {trailers[stream].data(), trailers[stream].size()};
  }
  bool WriteData(uint32_t stream, std::string_view head, size_t len) override {
    out += head;
    out += resp_body[stream].substr(0, len);
    resp_body[stream].erase(0, len);
    return true;
  }
  Space space;
  std::map<int32_t, Pairs> requests;
  std::map<int32_t, std::string> bodies, resp_body;
  std::map<int32_t, bool> ended;
  std::map<int32_t, std::vector<http::Field>> trailers;
  std::string out;
};

// zproxy's side towards the upstream.
struct Client : ClientHandler {
  HeaderSpace AcquireHeaderSpace() override { return space.Get(); }
  void ReleaseHeaderSpace(HeaderSpace) override {}
  void OnResponseHead(uint32_t h, http::ResponseHead& head, bool end) override {
    statuses[h].push_back(head.status);
    framing[h] = head.body.framing;
    length[h] = head.body.length;
    if (end) ends[h]++;
  }
  void OnResponseData(uint32_t h, std::string_view d) override { bodies[h] += d; }
  void OnResponseTrailers(uint32_t h, std::span<http::Field> f) override {
    for (auto& x : f) trailers[h].emplace_back(x.name, x.value);
  }
  void OnResponseEnd(uint32_t h) override { ends[h]++; }
  void OnStreamClose(uint32_t h, uint32_t code) override { closed[h] = code; }
  void OnGoaway(uint32_t code) override { goaway = static_cast<int>(code); }
  void OnSettings() override { settings++; }
  bool WriteFrames(std::string_view b) override {
    out += b;
    return true;
  }
  size_t RequestDataReady(uint32_t h, size_t max, bool* last) override {
    size_t n = std::min(max, req_body[h].size());
    *last = n == req_body[h].size();
    return n;
  }
  bool WriteData(uint32_t h, std::string_view head, size_t len) override {
    out += head;
    out += req_body[h].substr(0, len);
    req_body[h].erase(0, len);
    return true;
  }
  Space space;
  std::map<uint32_t, std::vector<int>> statuses;
  std::map<uint32_t, http::Framing> framing;
  std::map<uint32_t, uint64_t> length;
  std::map<uint32_t, std::string> bodies, req_body;
  std::map<uint32_t, Pairs> trailers;
  std::map<uint32_t, int> ends;
  std::map<uint32_t, uint32_t> closed;
  int goaway = -1;
  int settings = 0;
  std::string out;
};

class ClientSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerSettings ss;
    ss.max_concurrent_streams = 7;
    ASSERT_TRUE(server.Start(ss, &up));
    ASSERT_TRUE(client.Start(ClientSettings{}, &zp));
  }
  void Pump() {
    for (int i = 0; i < 50; i++) {
      ASSERT_TRUE(client.Send());
      std::string c2s;
      c2s.swap(zp.out);
      ASSERT_TRUE(server.Receive(c2s));
      ASSERT_TRUE(server.Send());
      std::string s2c;
      s2c.swap(up.out);
      ASSERT_TRUE(client.Receive(s2c));
      if (c2s.empty() && s2c.empty()) return;
    }
  }
  int32_t Submit(std::string method, std::string path, std::vector<http::Field> fields, bool body,
                 uint32_t handle, bool te = false) {
    http::RequestHead req;
    req.method = method;
    req.method_id = http::MethodFromToken(method);
    req.authority = "up.example";
    req.path_and_query = path;
    req.fields = fields;
    char block[4096];
    size_t n = EncodeRequestBlock(req, "http", te, block, sizeof(block));
    EXPECT_NE(n, 0u);
    return client.SubmitRequest(std::string_view(block, n), body, handle);
  }

  Server up;
  Client zp;
  ServerSession server;
  ClientSession client;
};

TEST_F(ClientSessionTest, RequestOutResponseBodyAndTrailersBack) {
  int32_t id = Submit("POST", "/svc/Method?x=1", {{"content-type", "application/grpc"}}, true, 42,
                      /*te=*/true);
  ASSERT_GT(id, 0);
  zp.req_body[42] = std::string(100000, 'q');
  Pump();
  Pairs want = {{":method", "POST"},
                {":authority", "up.example"},
                {":path", "/svc/Method?x=1"},
                {"content-type", "application/grpc"}};  // te: trailers is consumed by it
  EXPECT_EQ(up.requests[id], want);
  EXPECT_EQ(up.bodies[id], std::string(100000, 'q'));
  EXPECT_TRUE(up.ended[id]);
  // The server answers with a body and trailers.
  up.resp_body[id] = std::string(70000, 'r');
  up.trailers[id] = {{"grpc-status", "0"}, {"grpc-message", "ok"}};
  http::ResponseHead resp;
  resp.status = 200;
  http::Field f[] = {{"content-type", "application/grpc"}};
  resp.fields = f;
  ASSERT_TRUE(server.SubmitResponse(id, resp, true));
  Pump();
  EXPECT_EQ(zp.statuses[42], std::vector<int>{200});
  EXPECT_EQ(zp.framing[42], http::Framing::kChunked);  // no Content-Length: until the end
  // Not acknowledged yet: more than the 64 KiB the server may send before WINDOW_UPDATE
  // only arrives once consumed.
  client.ConsumeResponseData(id, zp.bodies[42].size());
  Pump();
  EXPECT_EQ(zp.bodies[42], std::string(70000, 'r'));
  Pairs trailers = {{"grpc-status", "0"}, {"grpc-message", "ok"}};
  EXPECT_EQ(zp.trailers[42], trailers);
  EXPECT_EQ(zp.ends[42], 1);
  ASSERT_EQ(zp.closed.count(42), 1u);
  EXPECT_EQ(zp.closed[42], 0u);
}

TEST_F(ClientSessionTest, SettingsGiveTheStreamLimitAndResetsAreReported) {
  int32_t id = Submit("GET", "/", {}, false, 7);
  Pump();
  EXPECT_GE(zp.settings, 1);
  EXPECT_EQ(client.MaxConcurrentStreams(), 7u);
  http::ResponseHead resp;
  resp.status = 204;
  http::Field cl[] = {{"content-length", "0"}};
  resp.fields = cl;
  server.ResetStream(id, kRefusedStream);
  Pump();
  EXPECT_EQ(zp.closed[7], static_cast<uint32_t>(kRefusedStream));
  // A response with a Content-Length: the framing says so.
  int32_t id2 = Submit("GET", "/len", {}, false, 8);
  Pump();
  up.resp_body[id2] = "hello";
  http::Field five[] = {{"content-length", "5"}};
  resp.status = 200;
  resp.fields = five;
  ASSERT_TRUE(server.SubmitResponse(id2, resp, true));
  Pump();
  EXPECT_EQ(zp.framing[8], http::Framing::kLength);
  EXPECT_EQ(zp.length[8], 5u);
  EXPECT_EQ(zp.bodies[8], "hello");
}

TEST_F(ClientSessionTest, GoawayStopsNewStreams) {
  Submit("GET", "/", {}, false, 1);
  Pump();
  server.Shutdown();
  Pump();
  EXPECT_EQ(zp.goaway, 0);
  EXPECT_TRUE(client.Closing());
  EXPECT_LT(Submit("GET", "/", {}, false, 2), 0);
}

}  // namespace
}  // namespace zproxy::codec::http2
