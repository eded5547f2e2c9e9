// zproxy.v1.Admin implemented on ConfigManager. Includes gRPC: only admin_server.cc and
// admin_service.cc include this header.
#pragma once

#include <atomic>

#include "controlplane/admin/admin_server.h"
#include "zproxy/v1/admin.grpc.pb.h"

namespace zproxy::admin {

class AdminService final : public zproxy::v1::Admin::Service {
 public:
  explicit AdminService(AdminContext context) : ctx_(std::move(context)) {}

  // Makes open WatchHealth streams return (server shutdown).
  void Stop() { stopping_.store(true); }

  grpc::Status GetConfig(grpc::ServerContext*, const v1::GetConfigRequest*,
                         v1::ConfigResponse* out) override;
  grpc::Status ApplyConfig(grpc::ServerContext*, const v1::ApplyConfigRequest* req,
                           v1::ConfigResponse* out) override;
  grpc::Status Validate(grpc::ServerContext*, const v1::ValidateRequest* req,
                        v1::ValidateResponse* out) override;
  grpc::Status UpsertRoute(grpc::ServerContext*, const v1::UpsertRouteRequest* req,
                           v1::ConfigResponse* out) override;
  grpc::Status DeleteRoute(grpc::ServerContext*, const v1::DeleteRouteRequest* req,
                           v1::ConfigResponse* out) override;
  grpc::Status UpsertCluster(grpc::ServerContext*, const v1::UpsertClusterRequest* req,
                             v1::ConfigResponse* out) override;
  grpc::Status DeleteCluster(grpc::ServerContext*, const v1::DeleteClusterRequest* req,
                             v1::ConfigResponse* out) override;
  grpc::Status SetEndpointWeight(grpc::ServerContext*, const v1::SetEndpointWeightRequest* req,
                                 v1::ConfigResponse* out) override;
  grpc::Status DrainEndpoint(grpc::ServerContext*, const v1::DrainEndpointRequest* req,
                             v1::ConfigResponse* out) override;
  grpc::Status GetStats(grpc::ServerContext*, const v1::GetStatsRequest*,
                        v1::StatsResponse* out) override;
  grpc::Status WatchHealth(grpc::ServerContext* context, const v1::WatchHealthRequest*,
                           grpc::ServerWriter<v1::HealthEvent>* writer) override;
  grpc::Status GetHealth(grpc::ServerContext*, const v1::GetHealthRequest* req,
                         v1::HealthResponse* out) override;
  grpc::Status GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                         v1::StatusResponse* out) override;
  grpc::Status RestartDataplane(grpc::ServerContext*, const v1::RestartDataplaneRequest*,
                                v1::RestartDataplaneResponse* out) override;
  grpc::Status GetFleetStatus(grpc::ServerContext*, const v1::GetFleetStatusRequest*,
                              v1::FleetStatusResponse* out) override;

 private:
  grpc::Status Mutate(uint64_t expected_version, const state::ConfigManager::EditFn& edit,
                      v1::ConfigResponse* out);

  AdminContext ctx_;
  std::atomic<bool> stopping_{false};
};

}  // namespace zproxy::admin
