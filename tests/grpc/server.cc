// grpc-test-server: the gRPC upstream of the e2e tests (insecure h2c).
//
//   --listen HOST:PORT   port 0 picks a free port; prints "listening on HOST:PORT" when ready
//   --name NAME          returned in every EchoResponse.server
//   --health SVC=STATE   initial grpc.health.v1 status of SVC (STATE SERVING|NOT_SERVING;
//                        "=NOT_SERVING" is the overall health); repeatable
//
// Serves zproxy.test.Echo (echo.proto: every RPC kind, statuses, trailers, sleeps) and
// grpc.health.v1.Health. Messages up to 64 MiB both ways. Exits 0 on SIGTERM/SIGINT.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "tests/grpc/echo.grpc.pb.h"
#include "tests/grpc/health_impl.h"
#include "tests/grpc/pattern.h"

namespace zproxy::grpctest {
namespace {

using zproxy::test::EchoRequest;
using zproxy::test::EchoResponse;

constexpr int kMaxMessageBytes = 64 << 20;

class EchoImpl final : public zproxy::test::Echo::Service {
 public:
  EchoImpl(std::string name, HealthImpl* health) : name_(std::move(name)), health_(health) {}

  grpc::Status Unary(grpc::ServerContext* ctx, const EchoRequest* req,
                     EchoResponse* resp) override {
    calls_++;
    if (!Sleep(ctx, req->sleep_ms())) return Cancelled();
    resp->set_payload(req->payload());
    resp->set_server(name_);
    return Finish(ctx, *req);
  }

  grpc::Status ServerStream(grpc::ServerContext* ctx, const EchoRequest* req,
                            grpc::ServerWriter<EchoResponse>* writer) override {
    calls_++;
    if (!Sleep(ctx, req->sleep_ms())) return Cancelled();
    for (uint32_t i = 0; i < req->count(); i++) {
      EchoResponse resp;
      resp.set_payload(PatternPayload(i, req->size()));
      resp.set_server(name_);
      if (!writer->Write(resp)) return Cancelled();
    }
    return Finish(ctx, *req);
  }

  grpc::Status ClientStream(grpc::ServerContext* ctx, grpc::ServerReader<EchoRequest>* reader,
                            EchoResponse* resp) override {
    calls_++;
    EchoRequest first, req;
    uint64_t count = 0, bytes = 0;
    Sha256 sha;
    while (reader->Read(&req)) {
      if (count == 0) first = req;
      count++;
      bytes += req.payload().size();
      sha.Add(req.payload());
    }
    if (ctx->IsCancelled()) return Cancelled();
    if (!Sleep(ctx, first.sleep_ms())) return Cancelled();
    resp->set_count(count);
    resp->set_total_bytes(bytes);
    resp->set_sha256(sha.Hex());
    resp->set_server(name_);
    return Finish(ctx, first);
  }

  grpc::Status Bidi(grpc::ServerContext* ctx,
                    grpc::ServerReaderWriter<EchoResponse, EchoRequest>* stream) override {
    calls_++;
    EchoRequest first, req;
    bool have_first = false;
    while (stream->Read(&req)) {
      if (!have_first) {
        first = req;
        have_first = true;
        if (!Sleep(ctx, first.sleep_ms())) return Cancelled();
      }
      EchoResponse resp;
      resp.set_payload(req.payload());
      resp.set_server(name_);
      if (!stream->Write(resp)) return Cancelled();
    }
    if (ctx->IsCancelled()) return Cancelled();
    return Finish(ctx, first);
  }

  grpc::Status SetHealth(grpc::ServerContext*, const zproxy::test::SetHealthRequest* req,
                         zproxy::test::SetHealthResponse*) override {
    health_->Set(req->service(), req->serving()
                                     ? grpc::health::v1::HealthCheckResponse::SERVING
                                     : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    return grpc::Status::OK;
  }

  grpc::Status Stats(grpc::ServerContext*, const zproxy::test::StatsRequest*,
                     zproxy::test::StatsResponse* resp) override {
    resp->set_calls(calls_);
    resp->set_cancelled(cancelled_);
    return grpc::Status::OK;
  }

 private:
  // Sleeps in 10 ms steps; false as soon as the client has cancelled.
  bool Sleep(grpc::ServerContext* ctx, uint32_t ms) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      if (ctx->IsCancelled()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return !ctx->IsCancelled();
  }

  // Counted here, so a test can tell that a cancellation reached this server.
  grpc::Status Cancelled() {
    cancelled_++;
    return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the client");
  }

  // Trailers from the request, then the requested status (OK when none).
  static grpc::Status Finish(grpc::ServerContext* ctx, const EchoRequest& req) {
    for (const auto& [key, value] : req.trailers()) ctx->AddTrailingMetadata(key, value);
    if (req.status_code() == 0) return grpc::Status::OK;
    return grpc::Status(static_cast<grpc::StatusCode>(req.status_code()), req.status_message());
  }

  const std::string name_;
  HealthImpl* health_;
  std::atomic<uint64_t> calls_{0};
  std::atomic<uint64_t> cancelled_{0};
};

int Usage() {
  std::fprintf(stderr,
               "usage: grpc-test-server --listen HOST:PORT [--name NAME] "
               "[--health SERVICE=SERVING|NOT_SERVING]...\n");
  return 2;
}

int Main(int argc, char** argv) {
  std::string listen, name = "grpc-test-server";
  auto health = std::make_unique<HealthImpl>();
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    const std::string v = argv[++i];
    if (a == "--listen") {
      listen = v;
    } else if (a == "--name") {
      name = v;
    } else if (a == "--health") {
      const size_t eq = v.find('=');
      if (eq == std::string::npos) return Usage();
      const std::string state = v.substr(eq + 1);
      if (state != "SERVING" && state != "NOT_SERVING") return Usage();
      health->Set(v.substr(0, eq), state == "SERVING"
                                       ? grpc::health::v1::HealthCheckResponse::SERVING
                                       : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    } else {
      return Usage();
    }
  }
  if (listen.empty()) return Usage();

  // Signals are taken by a thread (sigwait), so block them before gRPC starts its threads.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  EchoImpl echo(name, health.get());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  builder.RegisterService(&echo);
  builder.RegisterService(health.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "grpc-test-server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::printf("listening on %s:%d\n", listen.substr(0, listen.rfind(':')).c_str(), port);
  std::fflush(stdout);

  std::thread stopper([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    // Running calls (a sleeping one, a Watch) get a moment, then are cancelled.
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  });
  server->Wait();
  stopper.join();
  return 0;
}

}  // namespace
}  // namespace zproxy::grpctest

int main(int argc, char** argv) { return zproxy::grpctest::Main(argc, argv); }
