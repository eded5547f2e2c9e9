// gRPC health probes against a real grpc++ server in this process (h2c and TLS with
// certificates made here): SERVING, NOT_SERVING, an unknown service, a refused port, a peer
// that never answers (the checker's timeout), the name check by SNI and verify off.
#include "controlplane/health/probe_grpc.h"

#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>

#include <chrono>
#include <map>
#include <mutex>

#include "common/tls/testing/self_signed.h"
#include "controlplane/health/probe.h"
#include "controlplane/health/test_servers.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"

namespace zproxy::health {
namespace {

using grpc::health::v1::HealthCheckResponse;

// One gRPC initialization for the whole binary, as zproxyd has (its Admin API server): tests
// must not shut the library down and start it again between them (see GrpcProbeChannel).
class GrpcInitialized : public ::testing::Environment {
 public:
  void SetUp() override { grpc_init(); }
  void TearDown() override { grpc_shutdown(); }
};
const auto* const kGrpcEnv = ::testing::AddGlobalTestEnvironment(new GrpcInitialized);

// grpc.health.v1.Health with settable statuses; unknown services are NOT_FOUND.
class FakeHealth final : public grpc::health::v1::Health::Service {
 public:
  void Set(const std::string& service, HealthCheckResponse::ServingStatus s) {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_[service] = s;
  }
  std::string last_authority() {
    std::lock_guard<std::mutex> lock(mu_);
    return authority_;
  }
  grpc::Status Check(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     HealthCheckResponse* resp) override {
    std::lock_guard<std::mutex> lock(mu_);
    const grpc::string_ref a = ctx->ExperimentalGetAuthority();
    authority_.assign(a.data(), a.size());
    auto it = statuses_.find(req->service());
    if (it == statuses_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown");
    resp->set_status(it->second);
    return grpc::Status::OK;
  }

 private:
  std::mutex mu_;
  std::map<std::string, HealthCheckResponse::ServingStatus> statuses_;
  std::string authority_;
};

class GrpcServer {
 public:
  explicit GrpcServer(std::shared_ptr<grpc::ServerCredentials> creds =
                          grpc::InsecureServerCredentials()) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", creds, &port_);
    b.RegisterService(&health_);
    server_ = b.BuildAndStart();
  }
  ~GrpcServer() { server_->Shutdown(std::chrono::system_clock::now()); }
  FakeHealth& health() { return health_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  FakeHealth health_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

struct Verdict {
  bool finished = false;
  bool ok = false;
  std::string reason;
};

// Runs one probe the way the checker does (poll on fd() for wanted_events()), failing it
// after `timeout_ms` as the checker's deadline would.
Verdict RunProbe(const std::string& address, const ProbeSpec& spec, int timeout_ms = 3000) {
  NetAddress a;
  std::string err;
  EXPECT_TRUE(ParseNetAddress(address, &a, &err)) << err;
  Probe p;
  Verdict v;
  if (p.Start(a, spec)) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    bool finished = false;
    while (!finished && std::chrono::steady_clock::now() < end) {
      pollfd pfd{p.fd(), static_cast<short>(p.wanted_events()), 0};
      if (poll(&pfd, 1, 20) > 0) finished = p.OnEvents(pfd.revents);
    }
    if (!finished) p.Fail("timeout");
  }
  v.finished = p.state() == Probe::State::kDone;
  v.ok = p.ok();
  v.reason = p.reason();
  return v;
}

ProbeSpec GrpcSpec(const std::string& service, const std::string& host,
                   std::shared_ptr<const GrpcProbeChannel> ch = GrpcProbeChannel::Insecure()) {
  ProbeSpec s;
  s.grpc_channel = std::move(ch);
  s.grpc_service = service;
  s.host = host;
  return s;
}

TEST(GrpcProbeTest, ServingIsHealthyAndNotServingIsNot) {
  GrpcServer server;
  server.health().Set("", HealthCheckResponse::SERVING);
  server.health().Set("app.Svc", HealthCheckResponse::NOT_SERVING);

  Verdict v = RunProbe(server.address(), GrpcSpec("", server.address()));
  EXPECT_TRUE(v.finished);
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.reason, "gRPC SERVING");
  EXPECT_EQ(server.health().last_authority(), server.address());

  v = RunProbe(server.address(), GrpcSpec("app.Svc", server.address()));
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.reason, "gRPC NOT_SERVING");

  server.health().Set("app.Svc", HealthCheckResponse::SERVING);
  v = RunProbe(server.address(), GrpcSpec("app.Svc", "app.example"));
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(server.health().last_authority(), "app.example");
}

TEST(GrpcProbeTest, UnknownServiceFailsWithItsStatus) {
  GrpcServer server;
  Verdict v = RunProbe(server.address(), GrpcSpec("nope", server.address()));
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.reason, "gRPC status 5: unknown");
}

TEST(GrpcProbeTest, RefusedPortIsUnavailable) {
  const std::string closed = testing::ClosedAddress();
  Verdict v = RunProbe(closed, GrpcSpec("", closed));
  EXPECT_TRUE(v.finished);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.reason.rfind("gRPC status 14: ", 0), 0u) << v.reason;
}

TEST(GrpcProbeTest, SilentPeerTimesOutAndIsCancelled) {
  testing::SilentListener silent;
  const auto t0 = std::chrono::steady_clock::now();
  Verdict v = RunProbe(silent.address(), GrpcSpec("", silent.address()), 300);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.reason, "timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

TEST(GrpcProbeTest, TlsChecksNameBySniAndHonoursVerifyOff) {
  tlsctx::SelfSignedOptions o;
  o.cn = "health.test";
  o.san = "DNS:health.test";
  tlsctx::SelfSigned cert = tlsctx::MakeSelfSigned(o);
  grpc::SslServerCredentialsOptions so;
  so.pem_key_cert_pairs.push_back({cert.key_pem, cert.cert_pem});
  GrpcServer server(grpc::SslServerCredentials(so));
  server.health().Set("", HealthCheckResponse::SERVING);

  ProbeTlsSettings s;
  s.ca_pem = cert.cert_pem;
  s.sni = "health.test";
  std::string err;
  auto good = GrpcProbeChannel::Tls(s, &err);
  ASSERT_NE(good, nullptr) << err;
  Verdict v = RunProbe(server.address(), GrpcSpec("", "health.test", good));
  EXPECT_TRUE(v.ok) << v.reason;

  s.sni = "other.test";  // the certificate is not valid for this name
  auto wrong_name = GrpcProbeChannel::Tls(s, &err);
  ASSERT_NE(wrong_name, nullptr) << err;
  v = RunProbe(server.address(), GrpcSpec("", "other.test", wrong_name));
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.reason.rfind("gRPC status 14: ", 0), 0u) << v.reason;

  s.verify = false;
  auto no_verify = GrpcProbeChannel::Tls(s, &err);
  ASSERT_NE(no_verify, nullptr) << err;
  v = RunProbe(server.address(), GrpcSpec("", "other.test", no_verify));
  EXPECT_TRUE(v.ok) << v.reason;

  // An h2c probe against the TLS port gets no SERVING.
  v = RunProbe(server.address(), GrpcSpec("", server.address()));
  EXPECT_FALSE(v.ok);
}

TEST(GrpcProbeTest, UnreadableCaIsAnError) {
  ProbeTlsSettings s;
  s.ca_path = "/nonexistent/ca.pem";
  std::string err;
  EXPECT_EQ(GrpcProbeChannel::Tls(s, &err), nullptr);
  EXPECT_EQ(err, "ca: cannot read /nonexistent/ca.pem");
}

}  // namespace
}  // namespace zproxy::health
