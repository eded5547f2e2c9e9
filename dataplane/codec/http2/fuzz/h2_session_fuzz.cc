// libFuzzer target for the HTTP/2 glue (both codec sides on nghttp2): arbitrary bytes as
// a client's (server side) or an upstream's (client side) byte stream, split at
// arbitrary points, with a handler that answers, streams bodies, sends trailers and
// resets as the proxy does. Built by tools/fuzz-parser (clang, ASan + UBSan).
// Input: byte 0 = mode and split seed, the rest = the peer's bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/codec/http2/client_session.h"
#include "dataplane/codec/http2/request_block.h"
#include "dataplane/codec/http2/server_session.h"

namespace {

using namespace zproxy::codec::http2;
using zproxy::http::Field;

alignas(16) char g_space[65536 + 8192];

struct Server : ServerHandler {
  ServerSession* session = nullptr;
  std::vector<int32_t> to_answer;
  uint32_t body_left[64] = {};
  HeaderSpace AcquireHeaderSpace() override { return {g_space, sizeof(g_space), 0}; }
  void ReleaseHeaderSpace(HeaderSpace) override {}
  uint32_t OnRequestHead(int32_t stream, zproxy::http::RequestHead& head, bool) override {
    // Touch every view, as routing and header policy do.
    size_t sum = head.method.size() + head.authority.size() + head.path.size();
    for (const Field& f : head.fields) sum += f.name.size() + f.value.size();
    to_answer.push_back(stream);
    return static_cast<uint32_t>(stream % 64) + static_cast<uint32_t>(sum % 1);
  }
  uint32_t OnRequestRefused(int32_t stream, int, std::string_view) override {
    to_answer.push_back(stream);
    return static_cast<uint32_t>(stream % 64);
  }
  void OnRequestData(uint32_t h, std::string_view d) override {
    if (!d.empty() && d[0] == 'R') session->ResetStream(static_cast<int32_t>(h), kCancel);
  }
  void OnRequestEnd(uint32_t) override {}
  void OnStreamClose(uint32_t, uint32_t) override {}
  bool WriteFrames(std::string_view) override { return true; }
  size_t ResponseDataReady(uint32_t h, size_t max, bool* last) override {
    size_t n = std::min<size_t>(max, body_left[h % 64]);
    *last = n == body_left[h % 64];
    return n;
  }
  std::span<const Field> ResponseTrailers(uint32_t h) override {
    static const Field t[] = {{"grpc-status", "0"}};
    return h % 2 ? std::span<const Field>(t, 1) : std::span<const Field>();
  }
  bool WriteData(uint32_t h, std::string_view, size_t len) override {
    body_left[h % 64] -= static_cast<uint32_t>(len);
    return true;
  }
};

struct Client : ClientHandler {
  ClientSession* session = nullptr;
  HeaderSpace AcquireHeaderSpace() override { return {g_space, sizeof(g_space), 0}; }
  void ReleaseHeaderSpace(HeaderSpace) override {}
  void OnResponseHead(uint32_t, zproxy::http::ResponseHead& head, bool) override {
    for (const Field& f : head.fields) (void)f.value.size();
  }
  void OnResponseData(uint32_t, std::string_view d) override { (void)d; }
  void OnResponseTrailers(uint32_t, std::span<Field> f) override { (void)f.size(); }
  void OnResponseEnd(uint32_t) override {}
  void OnStreamClose(uint32_t, uint32_t) override {}
  void OnGoaway(uint32_t) override {}
  void OnSettings() override { (void)session->MaxConcurrentStreams(); }
  bool WriteFrames(std::string_view) override { return true; }
  size_t RequestDataReady(uint32_t, size_t max, bool* last) override {
    *last = true;
    return std::min<size_t>(max, 100);
  }
  bool WriteData(uint32_t, std::string_view, size_t) override { return true; }
};

void FeedServer(const uint8_t* data, size_t size, uint8_t seed) {
  Server handler;
  ServerSession session;
  handler.session = &session;
  ServerSettings settings;
  settings.max_concurrent_streams = 8;
  if (!session.Start(settings, &handler)) return;
  static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  std::string in(kPreface, 24);
  in.append(reinterpret_cast<const char*>(data), size);
  size_t piece = 1 + seed % 97;
  for (size_t off = 0; off < in.size(); off += piece) {
    if (!session.Receive(std::string_view(in).substr(off, piece))) break;
    for (int32_t stream : handler.to_answer) {
      zproxy::http::ResponseHead resp;
      resp.status = static_cast<uint16_t>(200 + static_cast<uint32_t>(stream) % 300);
      Field f[] = {{"Content-Type", "text/plain"}, {"X-Stream", "1"}};
      resp.fields = f;
      handler.body_left[stream % 64] = static_cast<uint32_t>(stream) * 131u % 40000u;
      session.SubmitResponse(stream, resp, stream % 3 != 0);
      session.ConsumeRequestData(stream, 1000);
    }
    handler.to_answer.clear();
    if (!session.Send()) break;
  }
}

void FeedClient(const uint8_t* data, size_t size, uint8_t seed) {
  Client handler;
  ClientSession session;
  handler.session = &session;
  if (!session.Start(ClientSettings{}, &handler)) return;
  zproxy::http::RequestHead req;
  req.method = "POST";
  req.method_id = zproxy::http::Method::kPost;
  req.authority = "up";
  req.path_and_query = "/svc";
  char block[256];
  size_t n = EncodeRequestBlock(req, "http", true, block, sizeof(block));
  for (uint32_t i = 0; i < 3; i++) session.SubmitRequest(std::string_view(block, n), i == 1, i);
  session.Send();
  size_t piece = 1 + seed % 89;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (size_t off = 0; off < in.size(); off += piece) {
    if (!session.Receive(in.substr(off, piece))) break;
    session.ConsumeResponseData(1, 500);
    if (!session.Send()) break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t control = data[0];
  if (control & 1) {
    FeedClient(data + 1, size - 1, control >> 1);
  } else {
    FeedServer(data + 1, size - 1, control >> 1);
  }
  return 0;
}
