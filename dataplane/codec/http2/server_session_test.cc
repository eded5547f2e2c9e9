// The HTTP/2 server codec against nghttp2's client side, in memory: requests in, neutral
// heads out; responses in, frames out; RFC 9113 §8 refusals; flow control.
#include "dataplane/codec/http2/server_session.h"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <deque>
#include <map>
#include <string>
#include <vector>

namespace zproxy::codec::http2 {
namespace {

struct Request {
  std::string method, authority, path, target;
  std::vector<std::pair<std::string, std::string>> fields;
  http::Framing framing = http::Framing::kNone;
  uint64_t length = 0;
  std::string body;
  bool ended = false;
  int refused = 0;
  bool closed = false;
  uint32_t close_code = 0;
};

class Handler : public ServerHandler {
 public:
  HeaderSpace AcquireHeaderSpace() override {
    spaces++;
    return {space_, sizeof(space_)};
  }
  void ReleaseHeaderSpace(HeaderSpace) override { spaces--; }
  uint32_t OnRequestHead(int32_t stream, http::RequestHead& head, bool end_stream) override {
    Request& r = streams[stream];
    r.method = head.method;
    r.authority = head.authority;
    r.path = head.path;
    r.target = head.path_and_query;
    for (const http::Field& f : head.fields) r.fields.emplace_back(f.name, f.value);
    r.framing = head.body.framing;
    r.length = head.body.length;
    r.ended = end_stream;
    return static_cast<uint32_t>(stream);  // the handle: the stream id itself
  }
  uint32_t OnRequestRefused(int32_t stream, int status, std::string_view) override {
    streams[stream].refused = status;
    return static_cast<uint32_t>(stream);
  }
  void OnRequestData(uint32_t stream, std::string_view data) override {
    streams[stream].body.append(data);
    unacked[stream] += data.size();
  }
  void OnRequestEnd(uint32_t stream) override { streams[stream].ended = true; }
  void OnStreamClose(uint32_t stream, uint32_t code) override {
    streams[stream].closed = true;
    streams[stream].close_code = code;
  }
  bool WriteFrames(std::string_view bytes) override {
    out.append(bytes);
    return true;
  }
  size_t ResponseDataReady(uint32_t stream, size_t max, bool* last) override {
    std::string& b = response_body[stream];
    size_t n = std::min(max, b.size());
    *last = n == b.size() && response_done[stream];
    return n;
  }
  std::span<const http::Field> ResponseTrailers(uint32_t stream) override {
    auto& t = response_trailers[stream];
    return {t.data(), t.size()};
  }
  bool WriteData(uint32_t stream, std::string_view head, size_t len) override {
    out.append(head);
    std::string& b = response_body[stream];
    out.append(b, 0, len);
    b.erase(0, len);
    return true;
  }

  std::map<int32_t, Request> streams;
  std::map<int32_t, size_t> unacked;
  std::map<int32_t, std::string> response_body;
  std::map<int32_t, bool> response_done;
  std::map<int32_t, std::vector<http::Field>> response_trailers;
  std::string out;
  int spaces = 0;

 private:
  alignas(16) char space_[65536 + 8192];
};

// nghttp2's client, recording what it gets back.
class Client {
 public:
  Client() {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl,
               const uint8_t* v, size_t vl, uint8_t, void* u) {
          static_cast<Client*>(u)->headers[f->hd.stream_id].emplace_back(
              std::string(reinterpret_cast<const char*>(n), nl),
              std::string(reinterpret_cast<const char*>(v), vl));
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session*, uint8_t, int32_t s, const uint8_t* d, size_t l, void* u) {
          static_cast<Client*>(u)->bodies[s].append(reinterpret_cast<const char*>(d), l);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cb, [](nghttp2_session*, int32_t s, uint32_t code, void* u) {
          static_cast<Client*>(u)->closed[s] = code;
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
          if (f->hd.type == NGHTTP2_GOAWAY) static_cast<Client*>(u)->goaway = f->goaway.error_code;
          return 0;
        });
    nghttp2_option* opt;
    nghttp2_option_new(&opt);
    // Lets the tests send what a well-behaved client would not.
    nghttp2_option_set_no_http_messaging(opt, 1);
    nghttp2_option_set_max_send_header_block_length(opt, 1 << 20);
    nghttp2_session_client_new2(&s, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~Client() { nghttp2_session_del(s); }

  // Names are sent as given (NO_COPY_NAME: nghttp2 would lowercase a copy), so the
  // strings live as long as the client.
  int32_t Request(std::vector<std::pair<std::string, std::string>> h, std::string body = "") {
    auto& kept = kept_.emplace_back(std::move(h));
    std::vector<nghttp2_nv> nv;
    for (auto& [n, v] : kept) {
      nv.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()),
                    n.size(), v.size(), NGHTTP2_NV_FLAG_NO_COPY_NAME});
    }
    std::string* b = &bodies_.emplace_back(std::move(body));
    nghttp2_data_provider p{};
    p.source.ptr = b;
    p.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                         nghttp2_data_source* src, void*) -> ssize_t {
      auto* body = static_cast<std::string*>(src->ptr);
      size_t n = std::min(len, body->size());
      memcpy(buf, body->data(), n);
      body->erase(0, n);
      if (body->empty()) *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    };
    bool has_body = !b->empty();
    return nghttp2_submit_request(s, nullptr, nv.data(), nv.size(), has_body ? &p : nullptr,
                                  nullptr);
  }
  std::string Out() {
    std::string o;
    const uint8_t* d;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(s, &d)) > 0) o.append(reinterpret_cast<const char*>(d), n);
    return o;
  }
  void In(const std::string& bytes) {
    nghttp2_session_mem_recv(s, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }

  nghttp2_session* s;
  std::map<int32_t, std::vector<std::pair<std::string, std::string>>> headers;
  std::map<int32_t, std::string> bodies;
  std::map<int32_t, uint32_t> closed;
  int goaway = -1;

 private:
  std::deque<std::vector<std::pair<std::string, std::string>>> kept_;
  std::deque<std::string> bodies_;
};

class ServerSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    settings.stream_window = 65535;  // what the flow-control test counts on
    ASSERT_TRUE(server.Start(settings, &handler));
  }
  // Moves bytes both ways until neither side has anything to say; each client write is
  // fed in pieces of `piece` bytes, so frames split anywhere.
  void Pump(size_t piece = 7) {
    for (int i = 0; i < 50; i++) {
      std::string c2s = client.Out();
      for (size_t off = 0; off < c2s.size(); off += piece) {
        ASSERT_TRUE(server.Receive(std::string_view(c2s).substr(off, piece)));
      }
      ASSERT_TRUE(server.Send());
      std::string s2c;
      s2c.swap(handler.out);
      client.In(s2c);
      if (c2s.empty() && s2c.empty()) return;
    }
  }
  std::vector<std::pair<std::string, std::string>> Get(std::string path) {
    return {{":method", "GET"}, {":scheme", "http"}, {":authority", "a.example"}, {":path", path}};
  }

  ServerSettings settings;
  Handler handler;
  ServerSession server;
  Client client;
};

TEST_F(ServerSessionTest, RequestHeadBecomesNeutral) {
  auto h = Get("/x/y?q=1");
  h.push_back({"cookie", "a=1"});
  h.push_back({"accept", "*/*"});
  h.push_back({"cookie", "b=2"});
  h.push_back({"te", "trailers"});
  int32_t id = client.Request(h);
  Pump();
  const Request& r = handler.streams[id];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.authority, "a.example");
  EXPECT_EQ(r.path, "/x/y");
  EXPECT_EQ(r.target, "/x/y?q=1");
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.framing, http::Framing::kNone);
  // Cookie crumbs joined where the first was; TE consumed.
  std::vector<std::pair<std::string, std::string>> want = {{"cookie", "a=1; b=2"},
                                                           {"accept", "*/*"}};
  EXPECT_EQ(r.fields, want);
  EXPECT_EQ(handler.spaces, 0);  // the header space went back
}

TEST_F(ServerSessionTest, HostStandsInForMissingAuthority) {
  int32_t id = client.Request(
      {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h.example"}});
  Pump();
  EXPECT_EQ(handler.streams[id].authority, "h.example");
  EXPECT_TRUE(handler.streams[id].fields.empty());  // Host is the authority, not a field
}

TEST_F(ServerSessionTest, BodyWithAndWithoutContentLength) {
  auto h = Get("/up");
  h[0].second = "POST";
  h.push_back({"content-length", "5"});
  int32_t a = client.Request(h, "hello");
  int32_t b = client.Request(
      {{":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}},
      std::string(70000, 'z'));
  Pump(1000);
  EXPECT_EQ(handler.streams[a].framing, http::Framing::kLength);
  EXPECT_EQ(handler.streams[a].length, 5u);
  EXPECT_EQ(handler.streams[a].body, "hello");
  EXPECT_TRUE(handler.streams[a].ended);
  EXPECT_EQ(handler.streams[b].framing, http::Framing::kChunked);
  // 70000 bytes exceed the client's initial window (65535): the rest comes only after
  // the server says the data was forwarded.
  EXPECT_LT(handler.streams[b].body.size(), 70000u);
  EXPECT_FALSE(handler.streams[b].ended);
  server.ConsumeRequestData(b, handler.unacked[b]);
  handler.unacked[b] = 0;
  Pump(1000);
  EXPECT_EQ(handler.streams[b].body.size(), 70000u);
  EXPECT_TRUE(handler.streams[b].ended);
}

TEST_F(ServerSessionTest, ResponseWithBodyGoesOutAsFrames) {
  int32_t id = client.Request(Get("/"));
  Pump();
  http::Field f[] = {{"Content-Type", "text/plain"}, {"X-Up", "1"}};
  http::ResponseHead resp;
  resp.status = 200;
  resp.fields = f;
  handler.response_body[id] = std::string(40000, 'r');
  ASSERT_TRUE(server.SubmitResponse(id, resp, true));
  Pump();
  // Deferred until the whole body is there and marked done.
  handler.response_done[id] = true;
  server.ResumeResponseData(id);
  Pump();
  std::vector<std::pair<std::string, std::string>> want = {
      {":status", "200"}, {"content-type", "text/plain"}, {"x-up", "1"}};
  EXPECT_EQ(client.headers[id], want);
  EXPECT_EQ(client.bodies[id], std::string(40000, 'r'));
  EXPECT_EQ(client.closed.count(id), 1u);
  EXPECT_TRUE(handler.streams[id].closed);
  EXPECT_EQ(handler.streams[id].close_code, 0u);
}

TEST_F(ServerSessionTest, InterimThenFinalWithoutBody) {
  int32_t id = client.Request(Get("/"));
  Pump();
  http::ResponseHead early;
  early.status = 103;
  http::Field link[] = {{"Link", "</s.css>; rel=preload"}};
  early.fields = link;
  ASSERT_TRUE(server.SubmitInterim(id, early));
  http::ResponseHead resp;
  resp.status = 204;
  ASSERT_TRUE(server.SubmitResponse(id, resp, false));
  Pump();
  ASSERT_EQ(client.headers[id].size(), 3u);
  EXPECT_EQ(client.headers[id][0].second, "103");
  EXPECT_EQ(client.headers[id][2].second, "204");
  EXPECT_EQ(client.closed[id], 0u);
}

// RFC 9113 §8: what makes a request malformed never reaches the handler as a request.
TEST_F(ServerSessionTest, MalformedRequestsAreResetNotDelivered) {
  std::vector<std::vector<std::pair<std::string, std::string>>> bad = {
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "a"},
       {":path", "/"},
       {"connection", "keep-alive"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "a"},
       {":path", "/"},
       {"transfer-encoding", "chunked"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "a"},
       {":path", "/"},
       {"te", "gzip"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "a"},
       {":path", "/"},
       {"X-Upper", "1"}},
      {{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}},  // no :path
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "a"},
       {":path", "/"},
       {":bogus", "1"}},
      {{":method", "GET"},
       {":scheme", "http"},
       {":authority", "a"},
       {":path", "/"},
       {"bad", "a\nb"}},
      {{"accept", "*/*"},
       {":method", "GET"},
       {":scheme", "http"},
       {":authority", "a"},
       {":path", "/"}},  // pseudo after regular
  };
  std::vector<int32_t> ids;
  for (auto& h : bad) ids.push_back(client.Request(h));
  Pump();
  for (size_t i = 0; i < ids.size(); i++) {
    SCOPED_TRACE(i);
    EXPECT_EQ(handler.streams.count(ids[i]), 0u);
    ASSERT_EQ(client.closed.count(ids[i]), 1u);
    EXPECT_EQ(client.closed[ids[i]], NGHTTP2_PROTOCOL_ERROR);
  }
  EXPECT_EQ(client.goaway, -1);  // stream errors, the connection lives on
  EXPECT_EQ(handler.spaces, 0);
}

TEST_F(ServerSessionTest, ContentLengthDisagreeingWithDataIsAStreamError) {
  auto h = Get("/");
  h[0].second = "POST";
  h.push_back({"content-length", "10"});
  int32_t id = client.Request(h, "short");
  Pump();
  EXPECT_FALSE(handler.streams[id].ended);  // the request never completes upstream
  EXPECT_TRUE(handler.streams[id].closed);
  EXPECT_NE(handler.streams[id].close_code, 0u);
}

TEST_F(ServerSessionTest, OversizedHeadIsRefusedWith431) {
  auto h = Get("/");
  for (int i = 0; i < 20; i++) h.push_back({"x-big-" + std::to_string(i), std::string(4000, 'v')});
  int32_t id = client.Request(h);
  Pump(100000);
  EXPECT_EQ(handler.streams[id].refused, 431);
  EXPECT_EQ(handler.spaces, 0);
}

TEST_F(ServerSessionTest, GarbageIsAConnectionError) {
  std::string preface_then_junk = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  preface_then_junk += std::string("\x00\x00\x04\x08\x00\x00\x00\x00\x00", 9);  // bad window
  // WINDOW_UPDATE of length 4 on stream 0 with increment 0: PROTOCOL_ERROR.
  preface_then_junk += std::string("\x00\x00\x00\x00", 4);
  server.Receive(preface_then_junk);  // nghttp2 may or may not call it fatal here
  server.Send();
  // A GOAWAY (type 7) went out and the session wants nothing more: close.
  ASSERT_GE(handler.out.size(), 9u);
  EXPECT_NE(handler.out.find(std::string("\x07\x00\x00\x00\x00\x00", 6)), std::string::npos);
  EXPECT_TRUE(server.Finished());
}

}  // namespace
}  // namespace zproxy::codec::http2
