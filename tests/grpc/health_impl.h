// grpc.health.v1.Health for the gRPC test server: per-service statuses settable at start
// (--health) and at run time (Echo/SetHealth), so tests can make a health checker see a
// server go NOT_SERVING and come back.
#pragma once

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"

namespace zproxy::grpctest {

class HealthImpl final : public grpc::health::v1::Health::Service {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  HealthImpl();
  void Set(const std::string& service, ServingStatus status);

  // Unknown services are NOT_FOUND, as the protocol says.
  grpc::Status Check(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::health::v1::HealthCheckResponse* resp) override;
  // Sends the current status, then every change, until the client cancels.
  grpc::Status Watch(grpc::ServerContext* ctx, const grpc::health::v1::HealthCheckRequest* req,
                     grpc::ServerWriter<grpc::health::v1::HealthCheckResponse>* writer) override;

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, ServingStatus> statuses_;
};

}  // namespace zproxy::grpctest
