#include "controlplane/admin/admin_service.h"

#include <chrono>
#include <thread>

#include "common/log.h"
#include "controlplane/admin/health_report.h"
#include "controlplane/admin/metrics_scrape.h"
#include "controlplane/config/defaults.h"

namespace zproxy::admin {
namespace {

grpc::Status ToGrpc(const state::OpStatus& st) {
  using C = state::OpStatus;
  switch (st.code) {
    case C::kOk:
      return grpc::Status::OK;
    case C::kInvalidArgument:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, st.message);
    case C::kNotFound:
      return grpc::Status(grpc::StatusCode::NOT_FOUND, st.message);
    case C::kFailedPrecondition:
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, st.message);
    case C::kUnavailable:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, st.message);
    case C::kInternal:
      break;
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, st.message);
}

void Fill(const controlplane::ConfigStore::Snapshot& snap, v1::ConfigResponse* out) {
  *out->mutable_config() = *snap.config;
  out->set_version(snap.version);
}

}  // namespace

grpc::Status AdminService::Mutate(uint64_t expected_version,
                                  const state::ConfigManager::EditFn& edit,
                                  v1::ConfigResponse* out) {
  controlplane::ConfigStore::Snapshot snap;
  if (ctx_.fleet_mutate) {
    int64_t revision = 0;
    state::OpStatus st = ctx_.fleet_mutate(expected_version, edit, &snap, &revision);
    if (!st.ok()) {
      ZLOG_INFO("admin: fleet change refused: %s", st.message.c_str());
      return ToGrpc(st);
    }
    Fill(snap, out);
    out->set_version(static_cast<uint64_t>(revision));
    return grpc::Status::OK;
  }
  state::OpStatus st = ctx_.manager->Mutate(expected_version, edit, &snap);
  if (!st.ok()) {
    ZLOG_INFO("admin: change refused: %s", st.message.c_str());
    return ToGrpc(st);
  }
  ZLOG_INFO("admin: config version %llu is live", static_cast<unsigned long long>(snap.version));
  Fill(snap, out);
  return grpc::Status::OK;
}

grpc::Status AdminService::GetConfig(grpc::ServerContext*, const v1::GetConfigRequest*,
                                     v1::ConfigResponse* out) {
  Fill(ctx_.manager->Current(), out);
  // Fleet mode: the version to compare on is the fleet's (the same on every node).
  if (ctx_.fleet_mutate) out->set_version(static_cast<uint64_t>(ctx_.manager->etcd_revision()));
  return grpc::Status::OK;
}

grpc::Status AdminService::ApplyConfig(grpc::ServerContext*, const v1::ApplyConfigRequest* req,
                                       v1::ConfigResponse* out) {
  if (ctx_.fleet_mutate) {
    // Fleet mode: ApplyConfig replaces the fleet config (listeners, clusters); the node-local
    // fields of the request are not the fleet's and come from each node's file.
    return Mutate(
        req->expected_version(),
        [&](v1::Config* c) {
          *c->mutable_listeners() = req->config().listeners();
          *c->mutable_clusters() = req->config().clusters();
          return state::OpStatus::Ok();
        },
        out);
  }
  return Mutate(
      req->expected_version(),
      [&](v1::Config* c) {
        *c = req->config();
        return state::OpStatus::Ok();
      },
      out);
}

grpc::Status AdminService::Validate(grpc::ServerContext*, const v1::ValidateRequest* req,
                                    v1::ValidateResponse* out) {
  v1::Config candidate = ctx_.fleet_candidate ? ctx_.fleet_candidate(req->config()) : req->config();
  config::ApplyDefaults(&candidate);
  for (const auto& e : state::CandidateErrors(*ctx_.manager->Current().config, candidate)) {
    auto* v = out->add_errors();
    v->set_field(e.field_path);
    v->set_message(e.message);
  }
  out->set_ok(out->errors_size() == 0);
  return grpc::Status::OK;
}

grpc::Status AdminService::UpsertRoute(grpc::ServerContext*, const v1::UpsertRouteRequest* req,
                                       v1::ConfigResponse* out) {
  return Mutate(
      req->expected_version(),
      [&](v1::Config* c) { return state::UpsertRoute(c, req->listener(), req->route()); }, out);
}

grpc::Status AdminService::DeleteRoute(grpc::ServerContext*, const v1::DeleteRouteRequest* req,
                                       v1::ConfigResponse* out) {
  return Mutate(
      req->expected_version(),
      [&](v1::Config* c) {
        return state::DeleteRoute(c, req->listener(), req->name(), req->match());
      },
      out);
}

grpc::Status AdminService::UpsertCluster(grpc::ServerContext*, const v1::UpsertClusterRequest* req,
                                         v1::ConfigResponse* out) {
  return Mutate(
      req->expected_version(),
      [&](v1::Config* c) { return state::UpsertCluster(c, req->cluster()); }, out);
}

grpc::Status AdminService::DeleteCluster(grpc::ServerContext*, const v1::DeleteClusterRequest* req,
                                         v1::ConfigResponse* out) {
  return Mutate(
      req->expected_version(), [&](v1::Config* c) { return state::DeleteCluster(c, req->name()); },
      out);
}

grpc::Status AdminService::SetEndpointWeight(grpc::ServerContext*,
                                             const v1::SetEndpointWeightRequest* req,
                                             v1::ConfigResponse* out) {
  return Mutate(
      req->expected_version(),
      [&](v1::Config* c) {
        return state::SetEndpointWeight(c, req->cluster(), req->address(), req->weight());
      },
      out);
}

grpc::Status AdminService::DrainEndpoint(grpc::ServerContext*, const v1::DrainEndpointRequest* req,
                                         v1::ConfigResponse* out) {
  return Mutate(
      req->expected_version(),
      [&](v1::Config* c) {
        return state::DrainEndpoint(c, req->cluster(), req->address(), req->undrain());
      },
      out);
}

grpc::Status AdminService::GetStats(grpc::ServerContext*, const v1::GetStatsRequest*,
                                    v1::StatsResponse* out) {
  std::string body, error;
  // The stats the data plane streams every second; scraping is the fallback (no stream
  // yet, or none recent).
  if (!ctx_.latest_stats || !ctx_.latest_stats(&body)) {
    const std::string& address = ctx_.manager->Current().config->metrics_address();
    if (address.empty()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "metrics_address is empty and the data plane streams no stats yet");
    }
    if (!ScrapeMetrics(address, 2000, &body, &error)) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, error);
    }
  }
  auto sums = SumByName(body);
  auto total = [&](const char* name) { return static_cast<uint64_t>(sums[name]); };
  out->set_requests_total(total("zproxy_requests_total"));
  out->set_connections_open(total("zproxy_connections_open"));
  out->set_errors_total(total("zproxy_errors_total"));
  out->set_upstream_connects_total(total("zproxy_upstream_connects_total"));
  out->set_config_version(total("zproxy_config_version"));
  out->set_metrics_text(std::move(body));
  return grpc::Status::OK;
}

grpc::Status AdminService::WatchHealth(grpc::ServerContext* context,
                                       const v1::WatchHealthRequest* req,
                                       grpc::ServerWriter<v1::HealthEvent>* writer) {
  // Transitions as the active checker decides them; nothing is invented. Without a checker
  // the stream stays open and silent until the client leaves or zproxyd stops.
  std::shared_ptr<health::HealthSubscription> sub;
  if (ctx_.health_events != nullptr) sub = ctx_.health_events->Subscribe();
  // Subscribed first, so no transition falls between the snapshot and the stream (one may
  // be sent twice: as state, then as the transition that produced it).
  if (req->initial_state() && ctx_.health_states) {
    for (const health::EndpointHealth& s : ctx_.health_states()) {
      if (!req->cluster().empty() && req->cluster() != s.cluster) continue;
      v1::HealthEvent out;
      out.set_cluster(s.cluster);
      out.set_address(s.address);
      out.set_healthy(s.healthy);
      out.set_reason(s.last_result);
      out.set_unix_time_ms(UnixMs(s.last_transition) != 0 ? UnixMs(s.last_transition)
                                                          : UnixMs(s.checking_since));
      if (!writer->Write(out)) {
        if (sub != nullptr) ctx_.health_events->Unsubscribe(sub);
        return grpc::Status::OK;
      }
    }
  }
  while (!context->IsCancelled() && !stopping_.load()) {
    health::HealthEvent e;
    if (sub == nullptr || !sub->Next(&e, std::chrono::milliseconds(100))) {
      if (sub == nullptr) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (!req->cluster().empty() && req->cluster() != e.cluster) continue;
    v1::HealthEvent out;
    out.set_cluster(e.cluster);
    out.set_address(e.address);
    out.set_healthy(e.healthy);
    out.set_reason(e.reason);
    out.set_unix_time_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(e.time.time_since_epoch()).count());
    if (!writer->Write(out)) break;
  }
  if (sub != nullptr) ctx_.health_events->Unsubscribe(sub);
  return grpc::Status::OK;
}

grpc::Status AdminService::GetHealth(grpc::ServerContext*, const v1::GetHealthRequest* req,
                                     v1::HealthResponse* out) {
  const controlplane::ConfigStore::Snapshot snap = ctx_.manager->Current();
  std::vector<health::EndpointHealth> states;
  if (ctx_.health_states) states = ctx_.health_states();
  std::string error;
  ResolvedNames names;
  if (ctx_.dns_names) names = ctx_.dns_names();
  if (!BuildHealthReport(*snap.config, states, req->cluster(), std::chrono::system_clock::now(),
                         out, &error, &names)) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, error);
  }
  out->set_config_version(snap.version);
  // Outlier ejection is the data plane's, per worker, and reported only as a count.
  std::string metrics;
  if (ctx_.latest_stats && ctx_.latest_stats(&metrics)) {
    auto sums = SumByName(metrics);
    auto it = sums.find("zproxy_upstream_ejected");
    if (it != sums.end()) out->set_outlier_ejected(static_cast<uint64_t>(it->second));
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::GetStatus(grpc::ServerContext*, const v1::GetStatusRequest*,
                                     v1::StatusResponse* out) {
  DataplaneStatus dp = ctx_.dataplane_status();
  out->set_config_version(ctx_.manager->Current().version);
  out->set_dataplane_pid(dp.pid);
  out->set_dataplane_uptime_ms(dp.uptime_ms);
  out->set_dataplane_restarts(static_cast<uint32_t>(dp.restarts));
  out->set_handovers(static_cast<uint32_t>(dp.handovers));
  out->set_dataplane_adopted(dp.adopted);
  out->set_config_file(ctx_.manager->file_path());
  out->set_config_source(ctx_.config_source);
  out->set_state_path(ctx_.state_path);
  out->set_workers(ctx_.workers);
  if (ctx_.fleet_status) ctx_.fleet_status(out->mutable_fleet());
  return grpc::Status::OK;
}

grpc::Status AdminService::GetFleetStatus(grpc::ServerContext*, const v1::GetFleetStatusRequest*,
                                          v1::FleetStatusResponse* out) {
  if (!ctx_.fleet_nodes) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "not in fleet mode: this zproxyd has no config_source (docs/fleet.md)");
  }
  return ToGrpc(ctx_.fleet_nodes(out));
}

grpc::Status AdminService::RestartDataplane(grpc::ServerContext*,
                                            const v1::RestartDataplaneRequest*,
                                            v1::RestartDataplaneResponse* out) {
  const pid_t old_pid = ctx_.dataplane_status().pid;
  const auto start = std::chrono::steady_clock::now();
  state::OpStatus st = ctx_.manager->RestartDataplane();
  if (!st.ok()) return ToGrpc(st);
  out->set_old_pid(old_pid);
  out->set_new_pid(ctx_.dataplane_status().pid);
  out->set_handover_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count());
  return grpc::Status::OK;
}

}  // namespace zproxy::admin
