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
//
// Benchmark mode (bench/run-h2): --rpc unary with --repeat N and/or --duration_ms D makes
// unary calls of --size bytes from --concurrency C threads (each a blocking loop) sharing
// --channels K channels (default 1: one HTTP/2 connection, C concurrent streams), until N
// calls in all or D ms; prints one JSON line {"bench":"unary","calls":..,"errors":..,
// "calls_per_s":..,"p50_us":..,"p99_us":..,...}. Every echo is checked; a failed or wrong
// call counts as an error (the first error's status is printed). Exits 1 if any call failed.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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
  // Benchmark mode.
  uint64_t repeat = 0;
  int64_t duration_ms = -1;
  int concurrency = 1;
  int channels = 1;
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
    else if (a == "--repeat")
      o->repeat = std::stoull(v);
    else if (a == "--duration_ms")
      o->duration_ms = std::stoll(v);
    else if (a == "--concurrency")
      o->concurrency = std::max(1, std::stoi(v));
    else if (a == "--channels")
      o->channels = std::max(1, std::stoi(v));
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

// Benchmark mode: closed-loop unary calls from o.concurrency threads.
int BenchUnary(const Options& o, const grpc::ChannelArguments& base_args) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<zproxy::test::Echo::Stub>> stubs;
  for (int i = 0; i < o.channels; i++) {
    grpc::ChannelArguments args = base_args;
    // Distinct channels get distinct connections (no subchannel sharing).
    args.SetInt("zproxy.bench.channel", i);
    channels.push_back(grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args));
    stubs.push_back(zproxy::test::Echo::NewStub(channels.back()));
  }
  for (auto& ch : channels) {
    if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "grpc-test-client: could not connect to %s\n", o.target.c_str());
      return 1;
    }
  }
  const std::string payload = PatternPayload(0, o.size);
  std::atomic<uint64_t> issued{0}, errors{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::string first_error;
  std::vector<std::vector<uint32_t>> lat(o.concurrency);
  const auto start = std::chrono::steady_clock::now();
  const auto end = o.duration_ms >= 0 ? start + std::chrono::milliseconds(o.duration_ms)
                                      : std::chrono::steady_clock::time_point::max();
  std::vector<std::thread> threads;
  for (int t = 0; t < o.concurrency; t++) {
    threads.emplace_back([&, t] {
      auto* stub = stubs[t % stubs.size()].get();
      auto& mine = lat[t];
      mine.reserve(1 << 16);
      EchoRequest req;
      req.set_payload(payload);
      while (!stop.load(std::memory_order_relaxed)) {
        if (o.repeat && issued.fetch_add(1) >= o.repeat) break;
        const auto t0 = std::chrono::steady_clock::now();
        if (t0 >= end) break;
        grpc::ClientContext ctx;
        if (o.deadline_ms >= 0) ctx.set_deadline(std::chrono::system_clock::now() +
                                                 std::chrono::milliseconds(o.deadline_ms));
        EchoResponse resp;
        grpc::Status st = stub->Unary(&ctx, req, &resp);
        const auto t1 = std::chrono::steady_clock::now();
        if (!st.ok() || resp.payload() != payload) {
          if (errors.fetch_add(1) == 0) {
            std::lock_guard<std::mutex> lock(mu);
            first_error = st.ok() ? std::string("echo differs") : std::string(StatusCodeName(st.error_code())) + ": " +
                                                          st.error_message();
          }
          continue;
        }
        mine.push_back(static_cast<uint32_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count()));
      }
    });
  }
  for (auto& th : threads) th.join();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<uint32_t> all;
  for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) -> uint64_t {
    if (all.empty()) return 0;
    size_t i = static_cast<size_t>(p * (all.size() - 1) + 0.5);
    return all[std::min(i, all.size() - 1)];
  };
  double mean = 0;
  for (uint32_t x : all) mean += x;
  if (!all.empty()) mean /= all.size();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"bench\":\"unary\",\"calls\":%zu,\"errors\":%llu,\"seconds\":%.3f,"
                "\"calls_per_s\":%.1f,\"concurrency\":%d,\"channels\":%d,\"size\":%zu,"
                "\"mean_us\":%.1f,\"p50_us\":%llu,\"p90_us\":%llu,\"p99_us\":%llu,\"max_us\":%llu,"
                "\"first_error\":",
                all.size(), static_cast<unsigned long long>(errors.load()), secs,
                all.size() / secs, o.concurrency, o.channels, o.size, mean,
                static_cast<unsigned long long>(pct(0.5)), static_cast<unsigned long long>(pct(0.9)),
                static_cast<unsigned long long>(pct(0.99)),
                static_cast<unsigned long long>(all.empty() ? 0 : all.back()));
  std::string line = std::string(buf) + JsonString(first_error) + "}\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
  return errors.load() ? 1 : 0;
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
  if (o.repeat || o.duration_ms >= 0) {
    if (o.rpc != "unary") return Usage("--repeat/--duration_ms are for --rpc unary only");
    return BenchUnary(o, args);
  }
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
