#include "controlplane/health/probe_grpc.h"

#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "grpc/health/v1/health.grpc.pb.h"

namespace zproxy::health {
namespace {

using grpc::health::v1::HealthCheckResponse;

// The PEM text itself when given (zproxyd inlines the files), else the file's contents.
bool LoadPem(const std::string& pem, const std::string& path, const char* what, std::string* out,
             std::string* error) {
  if (!pem.empty() || path.empty()) {
    *out = pem;
    return true;
  }
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in) {
    *error = std::string(what) + ": cannot read " + path;
    return false;
  }
  *out = ss.str();
  return true;
}

}  // namespace

// Owned by the probe, written by grpc's callback: the probe may give up (timeout, shutdown)
// while the call is still in flight, and the callback must then find nothing to notify.
struct GrpcProbe::Call {
  std::mutex mu;
  std::condition_variable completed;
  int notify_fd = -1;  // the probe's eventfd; -1 once the probe let go
  bool done = false;
  grpc::Status status;
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest request;
  HealthCheckResponse response;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::health::v1::Health::Stub> stub;
};

// gRPC stays initialized while a config has gRPC checks. Without this, the last probe
// call ending would shut the library down and the next probe start it again: costly, and
// grpc 1.51's callback completion queue can race with its own restart (an abort in
// grpc_cq_internal_unref, seen in probe_grpc_test).
GrpcProbeChannel::GrpcProbeChannel() { grpc_init(); }
GrpcProbeChannel::~GrpcProbeChannel() { grpc_shutdown(); }

std::shared_ptr<const GrpcProbeChannel> GrpcProbeChannel::Insecure() {
  auto c = std::make_shared<GrpcProbeChannel>();
  c->creds_ = grpc::InsecureChannelCredentials();
  c->key_ = "insecure";
  return c;
}

std::shared_ptr<const GrpcProbeChannel> GrpcProbeChannel::Tls(const ProbeTlsSettings& s,
                                                              std::string* error) {
  std::string ca, cert, key;
  if (!LoadPem(s.ca_pem, s.ca_path, "ca", &ca, error) ||
      !LoadPem(s.cert_pem, s.cert_path, "cert", &cert, error) ||
      !LoadPem(s.key_pem, s.key_path, "key", &key, error)) {
    return nullptr;
  }
  if (cert.empty() != key.empty()) {
    *error = "cert and key go together";
    return nullptr;
  }
  auto c = std::make_shared<GrpcProbeChannel>();
  c->sni_ = s.sni;
  if (s.verify) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ca;  // empty: grpc's default roots
    o.pem_private_key = key;
    o.pem_cert_chain = cert;
    c->creds_ = grpc::SslCredentials(o);
  } else {
    // verify: false — the certificate is neither chained nor name-checked, as in the data
    // plane; only the experimental TLS options can say so.
    std::vector<grpc::experimental::IdentityKeyCertPair> pairs;
    if (!cert.empty()) pairs.push_back({key, cert});
    auto provider =
        pairs.empty()
            ? nullptr
            : std::make_shared<grpc::experimental::StaticDataCertificateProvider>(std::move(pairs));
    grpc::experimental::TlsChannelCredentialsOptions o;
    if (provider != nullptr) {
      o.set_certificate_provider(provider);
      o.watch_identity_key_cert_pairs();
    }
    o.set_verify_server_certs(false);
    o.set_check_call_host(false);
    o.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
    c->creds_ = grpc::experimental::TlsCredentials(o);
  }
  if (c->creds_ == nullptr) {
    *error = "grpc TLS credentials could not be created";
    return nullptr;
  }
  c->key_ = "tls|" + std::string(s.verify ? "verify" : "noverify") + "|" + s.sni + "|" +
            std::to_string(std::hash<std::string>{}(ca + "|" + cert + "|" + key));
  return c;
}

bool GrpcProbe::Start(const NetAddress& address, const std::string& authority,
                      const std::string& service, const GrpcProbeChannel& channel,
                      std::string* error) {
  Reset();
  fd_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd_.valid()) {
    *error = std::string("eventfd: ") + std::strerror(errno);
    return false;
  }
  Reap();
  auto call = std::make_unique<Call>();
  call->notify_fd = fd_.get();
  grpc::ChannelArguments args;
  // A private subchannel: never one shared with (and backing off after) an earlier probe.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, authority);
  if (!channel.sni().empty()) args.SetSslTargetNameOverride(channel.sni());
  // ipv4:/ipv6: targets skip name resolution: the checker has resolved the address already.
  const std::string target =
      (address.family() == AF_INET6 ? "ipv6:" : "ipv4:") + address.ToString();
  call->channel = grpc::CreateCustomChannel(target, channel.credentials(), args);
  call->stub = grpc::health::v1::Health::NewStub(call->channel);
  call->request.set_service(service);
  Call* c = call.get();  // outlives the callback: see abandoned_
  call_ = std::move(call);
  c->stub->async()->Check(&c->ctx, &c->request, &c->response, [c](grpc::Status status) {
    std::lock_guard<std::mutex> lock(c->mu);
    c->status = std::move(status);
    c->done = true;
    const uint64_t one = 1;
    if (c->notify_fd >= 0) (void)!write(c->notify_fd, &one, sizeof(one));
    c->completed.notify_all();
  });
  return true;
}

bool GrpcProbe::Result(bool* ok, std::string* reason) {
  if (call_ == nullptr) return false;
  uint64_t v;
  (void)!read(fd_.get(), &v, sizeof(v));
  std::lock_guard<std::mutex> lock(call_->mu);
  if (!call_->done) return false;
  const grpc::Status& s = call_->status;
  if (!s.ok()) {
    *ok = false;
    *reason = "gRPC status " + std::to_string(s.error_code()) + ": " + s.error_message();
  } else {
    const HealthCheckResponse::ServingStatus st = call_->response.status();
    *ok = st == HealthCheckResponse::SERVING;
    *reason = "gRPC " + HealthCheckResponse::ServingStatus_Name(st);
  }
  return true;
}

void GrpcProbe::Reset() {
  if (call_ != nullptr) {
    bool done;
    {
      std::lock_guard<std::mutex> lock(call_->mu);
      call_->notify_fd = -1;
      done = call_->done;
    }
    if (done) {
      call_.reset();
    } else {
      // Outside the lock: grpc may run the callback (which takes it) inside TryCancel.
      call_->ctx.TryCancel();
      abandoned_.push_back(std::move(call_));
    }
  }
  // Closed after the callback can no longer write to it (notify_fd = -1 above), so a
  // later eventfd with the same number is never poked by a stale call.
  fd_.reset();
}

void GrpcProbe::Reap() {
  std::erase_if(abandoned_, [](const std::unique_ptr<Call>& c) {
    std::lock_guard<std::mutex> lock(c->mu);
    return c->done;
  });
}

GrpcProbe::GrpcProbe() = default;

GrpcProbe::~GrpcProbe() {
  Reset();
  // Cancelled calls complete within milliseconds. One that does not (grpc wedged) is
  // leaked rather than freed under grpc's feet.
  for (auto& c : abandoned_) {
    std::unique_lock<std::mutex> lock(c->mu);
    if (!c->completed.wait_for(lock, std::chrono::seconds(5), [&] { return c->done; })) {
      lock.unlock();
      (void)c.release();
    }
  }
}

}  // namespace zproxy::health
