#include "controlplane/admin/health_report.h"

#include <map>
#include <utility>

#include "common/net_address.h"

namespace zproxy::admin {

int64_t UnixMs(std::chrono::system_clock::time_point t) {
  if (t == std::chrono::system_clock::time_point{}) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string CheckDescription(const v1::Cluster& cluster) {
  if (!cluster.has_health_check()) return "";
  // The same condition that makes the checker speak gRPC (health_service.cc).
  if (cluster.protocol() == v1::HTTP2 && cluster.health_check().has_grpc_service()) {
    const std::string& svc = cluster.health_check().grpc_service();
    return std::string(cluster.has_tls() ? "grpcs" : "grpc") + " Health/Check " +
           (svc.empty() ? "\"\"" : svc);
  }
  const std::string& path = cluster.health_check().http_path();
  if (path.empty()) return "tcp connect";  // TLS clusters too: TCP checks stay a plain connect
  return std::string(cluster.has_tls() ? "https" : "http") + " GET " + path;
}

bool BuildHealthReport(const v1::Config& config, const std::vector<health::EndpointHealth>& states,
                       const std::string& only_cluster, std::chrono::system_clock::time_point now,
                       v1::HealthResponse* out, std::string* error, const ResolvedNames* names) {
  if (!only_cluster.empty()) {
    bool found = false;
    for (const auto& c : config.clusters()) found = found || c.name() == only_cluster;
    if (!found) {
      *error = "cluster \"" + only_cluster + "\" not found";
      return false;
    }
  }
  std::map<std::pair<std::string, std::string>, const health::EndpointHealth*> by_key;
  for (const auto& s : states) by_key[{s.cluster, s.address}] = &s;

  for (const auto& c : config.clusters()) {
    if (!only_cluster.empty() && c.name() != only_cluster) continue;
    const std::string check = CheckDescription(c);
    v1::ClusterHealthSummary* summary = out->add_clusters();
    summary->set_cluster(c.name());
    auto add_row = [&](const v1::Endpoint& e, const std::string& address) {
      v1::EndpointHealthStatus* h = out->add_endpoints();
      h->set_cluster(c.name());
      h->set_address(address);
      h->set_draining(e.draining());
      h->set_weight(e.weight());
      h->set_check(check);
      h->set_healthy(true);  // no check, or not checked yet: endpoints start healthy
      if (!c.has_health_check()) {
        h->set_source(v1::HEALTH_SOURCE_NO_CHECK);
      } else {
        h->set_source(v1::HEALTH_SOURCE_ACTIVE_CHECK);
        // Absent only in the milliseconds before the checker applies a new config (or when
        // the health region has no slot left): it starts, or stays, healthy.
        auto it = by_key.find({c.name(), address});
        if (it != by_key.end()) {
          const health::EndpointHealth& s = *it->second;
          h->set_healthy(s.healthy);
          h->set_last_check_ok(s.last_ok);
          h->set_last_check_reason(s.last_result);
          h->set_last_check_unix_ms(UnixMs(s.last_check));
          h->set_consecutive_successes(s.successes);
          h->set_consecutive_failures(s.failures);
          h->set_last_transition_unix_ms(UnixMs(s.last_transition));
          h->set_checking_since_unix_ms(UnixMs(s.checking_since));
        }
      }
      summary->set_endpoints(summary->endpoints() + 1);
      if (h->healthy()) summary->set_healthy(summary->healthy() + 1);
      if (h->draining()) summary->set_draining(summary->draining() + 1);
      return h;
    };
    for (const auto& e : c.endpoints()) {
      std::string host, why;
      uint16_t port = 0;
      const bool named = SplitHostPort(e.address(), &host, &port, &why) && !IsIpLiteral(host);
      auto found = named && names != nullptr ? names->find({c.name(), host})
                                             : ResolvedNames::const_iterator();
      if (!named || names == nullptr || found == names->end()) {
        add_row(e, e.address());
        continue;
      }
      const ResolvedName& r = found->second;
      for (const std::string& ip : r.ips) {
        const std::string address = ip.find(':') != std::string::npos
                                        ? "[" + ip + "]:" + std::to_string(port)
                                        : ip + ":" + std::to_string(port);
        v1::EndpointHealthStatus* h = add_row(e, address);
        h->set_hostname(e.address());
        h->set_dns(r.state);
      }
      if (r.ips.empty()) {
        // No address: it takes no traffic, whatever a check would say.
        v1::EndpointHealthStatus* h = add_row(e, e.address());
        h->set_hostname(e.address());
        h->set_dns(r.state);
        h->set_healthy(false);
        h->set_last_check_reason("no addresses: " + r.state);
        summary->set_healthy(summary->healthy() - 1);
      }
    }
  }
  out->set_unix_time_ms(UnixMs(now));
  return true;
}

}  // namespace zproxy::admin
