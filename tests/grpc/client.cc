// grpc-test-client: one call to grpc-test-server (directly or through a proxy, insecure
// h2c), printed as one JSON line for tests to assert on:
//
//   {"rpc":"unary","code":0,"code_name":"OK","message":"","trailers":{"k":"v","x-bin":"<hex>"},
//    "messages":1,"bytes":16,"sent":1,"hash_ok":true,"server":"a","elapsed_ms":3}
//
// "messages"/"bytes": response messages and payload bytes received; "sent": request
// messages written; "hash_ok": what came back is exactly what it should be (unary/bidi: the
// echo equals what was sent; server_stream: N pattern messages of SIZE; client_stream: the
// server's count, byte total and SHA-256 match). -bin trailer values are hex.
//
//   --target HOST:PORT  --rpc unary|server_stream|client_stream|bidi|set_health|health_check|stats
//   --count N (1)  --size BYTES (16)  --status CODE --message M (the server fails the call so)
//   --trailer KEY=VALUE (repeatable; the server sends it back as trailing metadata; VALUE is
//   hex for keys ending in -bin)  --sleep_ms MS (the server waits before answering)
//   --deadline_ms D  --cancel_after_ms C  --authority A
//   --service S --serving true|false (set_health, health_check)
// Exits 0 whenever the call completed (whatever its status), 2 on bad usage.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/grpc/echo.grpc.pb.h"
#include "tests/grpc/json_out.h"
#include "tests/grpc/pattern.h"

namespace zproxy::grpctest {
namespace {

using zproxy::test::EchoRequest;
using zproxy::test::EchoResponse;

constexpr int kMaxMessageBytes = 64 << 20;

struct Options {
  std::string target, rpc, message, service, authority;
  uint64_t count = 1;
  size_t size = 16;
  int status = 0;
  std::map<std::string, std::string> trailers;
  uint32_t sleep_ms = 0;
  int64_t deadline_ms = -1;
  int64_t cancel_after_ms = -1;
  bool serving = true;
};

struct Outcome {
  grpc::Status status;
  uint64_t messages = 0, bytes = 0, sent = 0;
  bool hash_ok = false;
  std::string server;
};

// Cancels the call after a delay unless the call ends first.
class Canceller {
 public:
  Canceller(grpc::ClientContext* ctx, int64_t after_ms) {
    if (after_ms < 0) return;
    thread_ = std::thread([this, ctx, after_ms] {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::milliseconds(after_ms), [this] { return done_; })) {
        ctx->TryCancel();
      }
    });
  }
  ~Canceller() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// The knobs every first request carries.
EchoRequest FirstRequest(const Options& o) {
  EchoRequest r;
  r.set_status_code(o.status);
  r.set_status_message(o.message);
  r.set_sleep_ms(o.sleep_ms);
  for (const auto& [k, v] : o.trailers) (*r.mutable_trailers())[k] = v;
  return r;
}

Outcome Unary(zproxy::test::Echo::Stub* stub, grpc::ClientContext* ctx, const Options& o) {
  Outcome out;
  EchoRequest req = FirstRequest(o);
  req.set_payload(PatternPayload(0, o.size));
  EchoResponse resp;
  out.sent = 1;
  out.status = stub->Unary(ctx, req, &resp);
  if (out.status.ok()) {
    out.messages = 1;
    out.bytes = resp.payload().size();
    out.hash_ok = resp.payload() == req.payload();
    out.server = resp.server();
  }
  return out;
}

Outcome ServerStream(zproxy::test::Echo::Stub* stub, grpc::ClientContext* ctx, const Options& o) {
  Outcome out;
  EchoRequest req = FirstRequest(o);
  req.set_count(static_cast<uint32_t>(o.count));
  req.set_size(static_cast<uint32_t>(o.size));
  auto reader = stub->ServerStream(ctx, req);
  out.sent = 1;
  Sha256 got, want;
  bool sizes_ok = true;
  EchoResponse resp;
  while (reader->Read(&resp)) {
    sizes_ok = sizes_ok && resp.payload().size() == o.size;
    got.Add(resp.payload());
    out.bytes += resp.payload().size();
    out.server = resp.server();
    out.messages++;
  }
  out.status = reader->Finish();
  for (uint64_t i = 0; i < o.count; i++) want.Add(PatternPayload(i, o.size));
  out.hash_ok = sizes_ok && out.messages == o.count && got.Hex() == want.Hex();
  return out;
}

Outcome ClientStream(zproxy::test::Echo::Stub* stub, grpc::ClientContext* ctx, const Options& o) {
  Outcome out;
  EchoResponse resp;
  auto writer = stub->ClientStream(ctx, &resp);
  Sha256 sent;
  for (uint64_t i = 0; i < o.count; i++) {
    EchoRequest req = i == 0 ? FirstRequest(o) : EchoRequest();
    req.set_payload(PatternPayload(i, o.size));
    sent.Add(req.payload());
    if (!writer->Write(req)) break;
    out.sent++;
  }
  writer->WritesDone();
  out.status = writer->Finish();
  if (out.status.ok()) {
    out.messages = 1;
    out.server = resp.server();
    out.hash_ok = resp.count() == o.count && resp.total_bytes() == o.count * o.size &&
                  resp.sha256() == sent.Hex();
  }
  return out;
}

// Ping-pong: each message is written, then its echo read, so a lost or altered message is
// pinned to its index.
Outcome Bidi(zproxy::test::Echo::Stub* stub, grpc::ClientContext* ctx, const Options& o) {
  Outcome out;
  auto stream = stub->Bidi(ctx);
  bool echoes_ok = true;
  for (uint64_t i = 0; i < o.count; i++) {
    EchoRequest req = i == 0 ? FirstRequest(o) : EchoRequest();
    req.set_payload(PatternPayload(i, o.size));
    if (!stream->Write(req)) break;
    out.sent++;
    EchoResponse resp;
    if (!stream->Read(&resp)) break;
    echoes_ok = echoes_ok && resp.payload() == req.payload();
    out.bytes += resp.payload().size();
    out.server = resp.server();
    out.messages++;
  }
  stream->WritesDone();
  EchoResponse extra;
  while (stream->Read(&extra)) out.messages++;  // none expected: counted if any
  out.status = stream->Finish();
  out.hash_ok = echoes_ok && out.messages == o.count;
  return out;
}

Outcome SetHealth(zproxy::test::Echo::Stub* stub, grpc::ClientContext* ctx, const Options& o) {
  Outcome out;
  zproxy::test::SetHealthRequest req;
  req.set_service(o.service);
  req.set_serving(o.serving);
  zproxy::test::SetHealthResponse resp;
  out.status = stub->SetHealth(ctx, req, &resp);
  out.hash_ok = out.status.ok();
  return out;
}

// Extra fields beside the common ones, as JSON members (",\"k\":v...").
Outcome Stats(zproxy::test::Echo::Stub* stub, grpc::ClientContext* ctx, std::string* extra) {
  Outcome out;
  zproxy::test::StatsResponse resp;
  out.status = stub->Stats(ctx, zproxy::test::StatsRequest(), &resp);
  *extra = ",\"calls\":" + std::to_string(resp.calls()) +
           ",\"cancelled\":" + std::to_string(resp.cancelled());
  return out;
}

Outcome HealthCheck(const std::shared_ptr<grpc::Channel>& ch, grpc::ClientContext* ctx,
                    const Options& o, std::string* extra) {
  Outcome out;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(o.service);
  grpc::health::v1::HealthCheckResponse resp;
  out.status = grpc::health::v1::Health::NewStub(ch)->Check(ctx, req, &resp);
  *extra = ",\"serving_status\":" +
           JsonString(grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()));
  return out;
}

int Usage(const std::string& why) {
  std::fprintf(stderr, "grpc-test-client: %s (see the comment at the top of client.cc)\n",
               why.c_str());
  return 2;
}

bool ParseArgs(int argc, char** argv, Options* o, std::string* why) {
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return *why = a + " needs a value", false;
    const std::string v = argv[++i];
    if (a == "--target")
      o->target = v;
    else if (a == "--rpc")
      o->rpc = v;
    else if (a == "--count")
      o->count = std::stoull(v);
    else if (a == "--size")
      o->size = std::stoull(v);
    else if (a == "--status")
      o->status = std::stoi(v);
    else if (a == "--message")
      o->message = v;
    else if (a == "--sleep_ms")
      o->sleep_ms = static_cast<uint32_t>(std::stoul(v));
    else if (a == "--deadline_ms")
      o->deadline_ms = std::stoll(v);
    else if (a == "--cancel_after_ms")
      o->cancel_after_ms = std::stoll(v);
    else if (a == "--service")
      o->service = v;
    else if (a == "--serving")
      o->serving = v == "true";
    else if (a == "--authority")
      o->authority = v;
    else if (a == "--trailer") {
      const size_t eq = v.find('=');
      if (eq == std::string::npos) return *why = "--trailer wants KEY=VALUE", false;
      const std::string key = v.substr(0, eq);
      std::string value = v.substr(eq + 1);
      if (key.size() > 4 && key.compare(key.size() - 4, 4, "-bin") == 0 &&
          !HexDecode(value, &value)) {
        return *why = "--trailer " + key + ": the value of a -bin key is hex", false;
      }
      o->trailers[key] = value;
    } else {
      return *why = "unknown flag " + a, false;
    }
  }
  if (o->target.empty() || o->rpc.empty()) return *why = "--target and --rpc are required", false;
  return true;
}

int Main(int argc, char** argv) {
  Options o;
  std::string why;
  try {
    if (!ParseArgs(argc, argv, &o, &why)) return Usage(why);
  } catch (const std::exception&) {
    return Usage("a numeric flag has a bad value");
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  if (!o.authority.empty()) args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, o.authority);
  auto channel = grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args);
  auto stub = zproxy::test::Echo::NewStub(channel);

  grpc::ClientContext ctx;
  if (o.deadline_ms >= 0) {
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
  }
  std::string extra;
  const auto start = std::chrono::steady_clock::now();
  Outcome out;
  {
    Canceller canceller(&ctx, o.cancel_after_ms);
    if (o.rpc == "unary")
      out = Unary(stub.get(), &ctx, o);
    else if (o.rpc == "server_stream")
      out = ServerStream(stub.get(), &ctx, o);
    else if (o.rpc == "client_stream")
      out = ClientStream(stub.get(), &ctx, o);
    else if (o.rpc == "bidi")
      out = Bidi(stub.get(), &ctx, o);
    else if (o.rpc == "set_health")
      out = SetHealth(stub.get(), &ctx, o);
    else if (o.rpc == "stats")
      out = Stats(stub.get(), &ctx, &extra);
    else if (o.rpc == "health_check")
      out = HealthCheck(channel, &ctx, o, &extra);
    else
      return Usage("unknown --rpc " + o.rpc);
  }
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);

  std::map<std::string, std::string> trailers;
  for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
    const std::string key(k.data(), k.size());
    const std::string value(v.data(), v.size());
    const bool binary = key.size() > 4 && key.compare(key.size() - 4, 4, "-bin") == 0;
    trailers[key] = binary ? HexEncode(value) : value;
  }
  std::string line =
      "{\"rpc\":" + JsonString(o.rpc) + ",\"code\":" + std::to_string(out.status.error_code()) +
      ",\"code_name\":" + JsonString(StatusCodeName(out.status.error_code())) +
      ",\"message\":" + JsonString(out.status.error_message()) +
      ",\"trailers\":" + JsonObject(trailers) + ",\"messages\":" + std::to_string(out.messages) +
      ",\"bytes\":" + std::to_string(out.bytes) + ",\"sent\":" + std::to_string(out.sent) +
      ",\"hash_ok\":" + (out.hash_ok ? "true" : "false") + ",\"server\":" + JsonString(out.server) +
      ",\"elapsed_ms\":" + std::to_string(elapsed.count()) + extra + "}\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  return 0;
}

}  // namespace
}  // namespace zproxy::grpctest

int main(int argc, char** argv) { return zproxy::grpctest::Main(argc, argv); }
