// The gRPC Admin API server (zproxy.v1.Admin) inside zproxyd. This header stays free of
// gRPC so main.cc compiles fast; admin_server.cc and admin_service.cc hold the gRPC code.
//
// Transport: "unix:/path" -> the directory is created (0755 if missing), a stale socket
// removed, and the socket bound with umask 0177 so it is 0600 before the first client can
// connect (chmod'ed again to be sure). "host:port" -> TCP with mutual TLS from admin_tls
// (validation refuses plaintext TCP). Server reflection is enabled.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "controlplane/admin/health_report.h"
#include "controlplane/health/endpoint_health.h"
#include "controlplane/health/health_events.h"
#include "controlplane/state/config_manager.h"

namespace zproxy::admin {

struct DataplaneStatus {
  pid_t pid = -1;
  long long uptime_ms = 0;
  int restarts = 0;
  int handovers = 0;
  bool adopted = false;  // not our child: taken over from a zproxyd that died
};

struct AdminContext {
  state::ConfigManager* manager = nullptr;
  std::function<DataplaneStatus()> dataplane_status;
  std::string config_source;  // "file" or "state"; fleet mode: "etcd", "snapshot", ...
  std::string state_path;
  uint32_t workers = 0;
  health::HealthEvents* health_events = nullptr;  // WatchHealth's source (null: none)
  // GetHealth's (and WatchHealth initial_state's) source: the checker's current states,
  // copied under its lock (null: no checker, every endpoint reads as unchecked).
  std::function<std::vector<health::EndpointHealth>()> health_states;
  // GetStats: the /metrics text the data plane last streamed (controlplane/sync); false
  // when there is none recent, then GetStats scrapes metrics_address.
  std::function<bool(std::string* prometheus_text)> latest_stats;
  // GetHealth: what DNS discovery knows of host-name endpoints (null: none).
  std::function<ResolvedNames()> dns_names;
  // Fleet mode (docs/fleet.md), null otherwise: mutations become etcd transactions and
  // the versions the API shows are etcd revisions of the fleet config.
  std::function<state::OpStatus(uint64_t expected_revision, const state::ConfigManager::EditFn&,
                                controlplane::ConfigStore::Snapshot* out, int64_t* revision)>
      fleet_mutate;
  std::function<void(zproxy::v1::FleetStatus*)> fleet_status;
  std::function<state::OpStatus(zproxy::v1::FleetStatusResponse*)> fleet_nodes;
  // Validate's candidate in fleet mode: this node's config with the request's listeners and
  // clusters (and this node's listener address overrides).
  std::function<zproxy::v1::Config(const zproxy::v1::Config& request)> fleet_candidate;
};

class AdminServer {
 public:
  // Binds and starts serving on config.admin_address(). Call after the supervisor's
  // signals are blocked (gRPC threads inherit the mask).
  static std::unique_ptr<AdminServer> Start(const std::string& address, const std::string& tls_cert,
                                            const std::string& tls_key,
                                            const std::string& tls_client_ca, AdminContext context,
                                            std::string* error);
  ~AdminServer();
  // Ends open streams (WatchHealth) and stops serving.
  void Shutdown();

  struct Impl;

 private:
  explicit AdminServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zproxy::admin
