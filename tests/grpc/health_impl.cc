#include "tests/grpc/health_impl.h"

#include <chrono>

namespace zproxy::grpctest {

using grpc::health::v1::HealthCheckResponse;

HealthImpl::HealthImpl() { statuses_[""] = HealthCheckResponse::SERVING; }

void HealthImpl::Set(const std::string& service, ServingStatus status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_[service] = status;
  }
  changed_.notify_all();
}

grpc::Status HealthImpl::Check(grpc::ServerContext*,
                               const grpc::health::v1::HealthCheckRequest* req,
                               HealthCheckResponse* resp) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = statuses_.find(req->service());
  if (it == statuses_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service");
  resp->set_status(it->second);
  return grpc::Status::OK;
}

grpc::Status HealthImpl::Watch(grpc::ServerContext* ctx,
                               const grpc::health::v1::HealthCheckRequest* req,
                               grpc::ServerWriter<HealthCheckResponse>* writer) {
  std::unique_lock<std::mutex> lock(mu_);
  bool first = true;
  ServingStatus last = HealthCheckResponse::UNKNOWN;
  while (!ctx->IsCancelled()) {
    auto it = statuses_.find(req->service());
    const ServingStatus now =
        it == statuses_.end() ? HealthCheckResponse::SERVICE_UNKNOWN : it->second;
    if (first || now != last) {
      HealthCheckResponse resp;
      resp.set_status(now);
      lock.unlock();
      if (!writer->Write(resp)) return grpc::Status::CANCELLED;
      lock.lock();
      first = false;
      last = now;
    }
    // Wakes on Set, and every 100 ms to notice a cancelled call.
    changed_.wait_for(lock, std::chrono::milliseconds(100));
  }
  return grpc::Status::CANCELLED;
}

}  // namespace zproxy::grpctest
