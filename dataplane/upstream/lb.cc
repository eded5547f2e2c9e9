#include "dataplane/upstream/lb.h"

namespace zproxy::upstream {
namespace {

// What an endpoint reads when nobody has pointed it at a health map slot.
constexpr uint8_t kAlwaysHealthy = 1;

}  // namespace

bool BuildClusterLbConfig(const zproxy::v1::Cluster& cluster, ClusterLbConfig* out,
                          std::string* error) {
  out->panic_threshold_percent = cluster.panic_threshold_percent();
  switch (cluster.lb()) {
    case zproxy::v1::LB_POLICY_UNSPECIFIED:
    case zproxy::v1::ROUND_ROBIN:
      out->algorithm = LbAlgorithm::kRoundRobin;
      break;
    case zproxy::v1::LEAST_CONNECTIONS:
      out->algorithm = LbAlgorithm::kLeastConnections;
      break;
    default:  // proto3 enums are open: a newer client may send a value we do not know
      *error = "lb: unsupported policy " + std::to_string(static_cast<int>(cluster.lb()));
      return false;
  }
  out->endpoints.clear();
  out->endpoints.reserve(cluster.endpoints_size());
  for (int i = 0; i < cluster.endpoints_size(); ++i) {
    const zproxy::v1::Endpoint& in = cluster.endpoints(i);
    EndpointConfig endpoint;
    std::string why;
    if (!ParseNetAddress(in.address(), &endpoint.address, &why)) {
      *error = "endpoints[" + std::to_string(i) + "].address: " + why;
      return false;
    }
    // proto3 cannot tell "unset" from 0, and a weight-0 endpoint would never be picked
    // (use drain or removal for that), so 0 means the default.
    endpoint.weight = in.weight() == 0 ? 1 : in.weight();
    out->endpoints.push_back(endpoint);
  }
  return true;
}

EndpointSet::EndpointSet(const ClusterLbConfig& config)
    : algorithm_(config.algorithm), panic_percent_(config.panic_threshold_percent) {
  endpoints_.reserve(config.endpoints.size());
  addresses_.reserve(config.endpoints.size());
  for (const EndpointConfig& in : config.endpoints) {
    Endpoint e;
    e.health = &kAlwaysHealthy;
    e.weight = in.weight == 0 ? 1 : in.weight;
    endpoints_.push_back(e);
    addresses_.push_back(in.address);
  }
}

void EndpointSet::SetHealthByte(uint32_t index, const uint8_t* byte) {
  if (index < endpoints_.size()) endpoints_[index].health = byte ? byte : &kAlwaysHealthy;
}

bool EndpointSet::healthy(uint32_t index) const {
  return __atomic_load_n(endpoints_[index].health, __ATOMIC_RELAXED) != 0;
}

bool EndpointSet::Eligible(uint32_t index, uint32_t exclude_index) const {
  return index != exclude_index && (panic_ || (!endpoints_[index].ejected && healthy(index)));
}

uint32_t EndpointSet::EligibleCount() const {
  uint32_t n = 0;
  for (uint32_t i = 0; i < endpoints_.size(); i++) n += Eligible(i, kNone) ? 1 : 0;
  return n;
}

uint32_t EndpointSet::Pick(uint32_t exclude_index) {
  panic_ = false;
  if (panic_percent_ != 0 && !endpoints_.empty()) {
    // Too few healthy endpoints: spread over all of them rather than overload the few
    // (or answer 503 when none is left).
    panic_ = EligibleCount() * 100 < panic_percent_ * static_cast<uint32_t>(endpoints_.size());
  }
  return algorithm_ == LbAlgorithm::kLeastConnections ? PickLeastConnections(exclude_index)
                                                      : PickRoundRobin(exclude_index);
}

uint32_t EndpointSet::PickRoundRobin(uint32_t exclude_index) {
  // nginx's smooth weighted round robin. Ineligible endpoints (unhealthy, excluded) sit
  // out the round: their current weight neither grows nor shrinks, and their weight is
  // not part of the total, so the others keep exact proportions among themselves.
  const uint32_t n = size();
  uint32_t best = kNone;
  int64_t total = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (!Eligible(i, exclude_index)) continue;
    Endpoint& e = endpoints_[i];
    e.current_weight += e.weight;
    total += e.weight;
    if (best == kNone || e.current_weight > endpoints_[best].current_weight) best = i;
  }
  if (best != kNone) endpoints_[best].current_weight -= total;
  return best;
}

uint32_t EndpointSet::PickLeastConnections(uint32_t exclude_index) {
  // Scan starting at the rotating cursor and keep the first strictly better endpoint,
  // so among equals the one nearest after the previous pick wins (round robin on ties).
  // (a+1)/wa < (b+1)/wb  <=>  (a+1)*wb < (b+1)*wa; 33-bit x 32-bit products fit in 64.
  const uint32_t n = size();
  uint32_t best = kNone;
  for (uint32_t k = 0; k < n; ++k) {
    uint32_t i = next_ + k;
    if (i >= n) i -= n;
    if (!Eligible(i, exclude_index)) continue;
    if (best == kNone) {
      best = i;
      continue;
    }
    const Endpoint& e = endpoints_[i];
    const Endpoint& b = endpoints_[best];
    if ((uint64_t{e.active} + 1) * b.weight < (uint64_t{b.active} + 1) * e.weight) best = i;
  }
  if (best != kNone) next_ = best + 1 == n ? 0 : best + 1;
  return best;
}

void EndpointSet::OnConnectionOpened(uint32_t index) {
  if (index < endpoints_.size()) ++endpoints_[index].active;
}

void EndpointSet::OnConnectionClosed(uint32_t index) {
  // Saturate rather than wrap: a stray extra close must not make an endpoint look like
  // it has four billion requests (or none, forever).
  if (index < endpoints_.size() && endpoints_[index].active > 0) --endpoints_[index].active;
}

}  // namespace zproxy::upstream
