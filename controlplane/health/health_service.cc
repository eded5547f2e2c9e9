#include "controlplane/health/health_service.h"

#include <set>
#include <utility>

#include "common/log.h"
#include "common/net_address.h"
#include "controlplane/config/defaults.h"

namespace zproxy::health {
namespace {

using Key = std::pair<std::string, std::string>;

// Endpoints that get a slot: those of clusters with a health_check, each address once.
std::vector<Key> CheckedEndpoints(const zproxy::v1::Config& config) {
  std::vector<Key> keys;
  std::set<Key> seen;
  for (const auto& c : config.clusters()) {
    if (!c.has_health_check()) continue;
    for (const auto& e : c.endpoints()) {
      Key k{c.name(), e.address()};
      if (seen.insert(k).second) keys.push_back(std::move(k));
    }
  }
  return keys;
}

ProbeTlsSettings ProbeTlsSettingsFor(const zproxy::v1::ClusterTls& t) {
  ProbeTlsSettings s;
  s.ca_pem = t.ca_pem();
  s.ca_path = t.ca();
  s.cert_pem = t.cert_pem();
  s.cert_path = t.cert();
  s.key_pem = t.key_pem();
  s.key_path = t.key();
  s.sni = t.sni();
  s.verify = !t.has_verify() || t.verify();
  s.min_tls13 = t.min_version() == "TLS1_3";
  return s;
}

}  // namespace

HealthService::HealthService(uint32_t slots) : slots_(slots), allocator_(slots) {}

HealthService::~HealthService() { Stop(); }

bool HealthService::Start(std::string* error, BpfHealthStore* bpf) {
  if (bpf != nullptr) {
    if (!HealthRegion::MapBpfMap(bpf->map_fd, /*writable=*/true, &region_, error)) return false;
    bpf_ = std::move(*bpf);
    if (bpf_.clear_all) bpf_.clear_all();  // names of a previous zproxyd's slots
  } else if (!HealthRegion::Create(slots_, &region_, error)) {
    return false;
  }
  checker_ = std::make_unique<HealthChecker>(
      &region_, [this](const std::string& cluster, const std::string& address, bool healthy,
                       const std::string& reason) {
        events_.Publish(
            HealthEvent{std::chrono::system_clock::now(), cluster, address, healthy, reason});
      });
  return checker_->Start(error);
}

void HealthService::Stop() {
  if (checker_ != nullptr) checker_->Stop();
}

void HealthService::Reset(const std::vector<InheritedSlot>& inherited) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint32_t s = 0; s < region_.slot_count(); s++) region_.Set(s, true);
  size_t kept = 0;
  for (const InheritedSlot& i : inherited) {
    if (i.slot >= region_.slot_count() || !allocator_.Claim(i.cluster, i.address, i.slot)) {
      continue;  // out of range or claimed twice: it gets a fresh slot on Apply
    }
    region_.Set(i.slot, i.healthy);
    if (bpf_.name_slot) bpf_.name_slot(i.slot, i.cluster, i.address);
    kept++;
  }
  if (!inherited.empty()) {
    ZLOG_INFO("health: kept %zu of %zu slot(s) (and verdicts) of the adopted data plane", kept,
              inherited.size());
  }
}

std::optional<uint32_t> HealthService::AssignLocked(const std::string& cluster,
                                                    const std::string& address, bool* fresh) {
  auto slot = allocator_.Assign(cluster, address, fresh);
  if (slot && *fresh) {
    region_.Set(*slot, true);
    if (bpf_.name_slot) bpf_.name_slot(*slot, cluster, address);
  }
  return slot;
}

void HealthService::Apply(const zproxy::v1::Config& config) {
  std::vector<CheckTarget> targets;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Key> keys = CheckedEndpoints(config);
    for (uint32_t freed : allocator_.Retain(keys)) {
      if (bpf_.clear_slot) bpf_.clear_slot(freed);
    }
    for (const auto& c : config.clusters()) {
      if (!c.has_health_check()) continue;
      zproxy::v1::HealthCheck hc = c.health_check();
      config::ApplyDefaults(&hc);  // normally applied already; a no-op then
      // HTTP checks of a TLS cluster speak TLS with the cluster's settings; one context
      // for all its endpoints. TCP checks stay a plain connect.
      std::shared_ptr<const ProbeTlsContext> tls;
      std::shared_ptr<const GrpcProbeChannel> grpc_channel;
      std::string tls_error;
      // gRPC checks (validation allows grpc_service only on http2 clusters): TLS by the
      // cluster's settings through grpc++'s own credentials, else h2c.
      const bool grpc = c.protocol() == zproxy::v1::HTTP2 && hc.has_grpc_service();
      if (grpc) {
        grpc_channel = c.has_tls() ? GrpcProbeChannel::Tls(ProbeTlsSettingsFor(c.tls()), &tls_error)
                                   : GrpcProbeChannel::Insecure();
        if (grpc_channel == nullptr) {
          ZLOG_WARN("health: cluster \"%s\": TLS for its gRPC checks: %s (every check fails)",
                    c.name().c_str(), tls_error.c_str());
          grpc_channel = GrpcProbeChannel::Insecure();  // never used: tls_error fails first
        }
      } else if (c.has_tls() && !hc.http_path().empty()) {
        tls = ProbeTlsContext::Create(ProbeTlsSettingsFor(c.tls()), &tls_error);
        if (tls == nullptr) {
          ZLOG_WARN("health: cluster \"%s\": TLS for its HTTP checks: %s (every check fails)",
                    c.name().c_str(), tls_error.c_str());
        }
      }
      std::set<std::string> seen;
      for (const auto& e : c.endpoints()) {
        if (!seen.insert(e.address()).second) continue;
        bool fresh = false;
        auto slot = AssignLocked(c.name(), e.address(), &fresh);
        if (!slot) {
          if (!full_warned_) {
            ZLOG_WARN(
                "health: all %u region slots in use; endpoints beyond them are not "
                "checked (always healthy)",
                slots_);
            full_warned_ = true;
          }
          continue;
        }
        CheckTarget t;
        // An inherited verdict (Reset) until the checker's own probes decide.
        t.initially_healthy = fresh || region_.Healthy(*slot);
        t.cluster = c.name();
        t.address = e.address();
        t.slot = *slot;
        std::string err;
        if (!ParseNetAddress(e.address(), &t.resolved, &err)) t.resolve_error = err;
        t.spec.http_path = hc.http_path();
        // Name-based virtual hosts behind TLS choose by SNI and Host alike: send the same.
        t.spec.host = tls != nullptr && !tls->sni().empty() ? tls->sni() : e.address();
        if (grpc) {
          t.spec.http_path.clear();
          t.spec.host = c.has_tls() && !c.tls().sni().empty() ? c.tls().sni() : e.address();
          t.spec.grpc_channel = grpc_channel;
          t.spec.grpc_service = hc.grpc_service();
        }
        t.spec.tls = tls;
        t.spec.tls_error = tls_error;
        t.spec.expected_statuses.assign(hc.expected_statuses().begin(),
                                        hc.expected_statuses().end());
        t.interval_ms = hc.interval_ms();
        t.timeout_ms = hc.timeout_ms();
        t.healthy_threshold = std::max(1u, hc.healthy_threshold());
        t.unhealthy_threshold = std::max(1u, hc.unhealthy_threshold());
        targets.push_back(std::move(t));
      }
    }
  }
  ZLOG_INFO("health: checking %zu endpoint(s)", targets.size());
  checker_->Update(std::move(targets));
}

void HealthService::FillBootstrap(const zproxy::v1::Config& config,
                                  zproxy::v1::DataplaneBootstrap* bootstrap,
                                  std::vector<int>* fds) {
  if (!region_.valid()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (const Key& k : CheckedEndpoints(config)) {
    bool fresh = false;
    auto slot = AssignLocked(k.first, k.second, &fresh);
    if (!slot) continue;  // Apply warned; the endpoint stays "always healthy"
    auto* s = bootstrap->add_health_slots();
    s->set_cluster(k.first);
    s->set_address(k.second);
    s->set_slot(*slot);
  }
  bootstrap->set_health_region_fd_index(static_cast<uint32_t>(fds->size()));
  if (bpf_.map_fd >= 0) {
    bootstrap->set_health_region_kind(zproxy::v1::HEALTH_REGION_BPF_MAP);
    fds->push_back(bpf_.share_fd.get());
  } else {
    bootstrap->set_health_region_kind(zproxy::v1::HEALTH_REGION_MEMFD);
    fds->push_back(region_.fd());
  }
}

}  // namespace zproxy::health
