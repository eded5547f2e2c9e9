// Load balancing over one cluster's endpoints, per worker.
//
// Two layers, so the expensive part happens once per snapshot and not once per worker:
//  - ClusterLbConfig: the cluster's policy and endpoints with resolved addresses and
//    weights. Built (and DNS resolved) once by the snapshot applier; immutable; shared.
//  - EndpointSet: one per worker per cluster, built from a ClusterLbConfig. Holds the
//    mutable balancing state (round-robin weights, active counts). Used by one thread
//    only; no atomics, no locks. Pick() allocates nothing.
//
// Health: each endpoint reads a health byte through a pointer (nonzero = healthy), so the
// data plane can point it into the mmapped BPF health map written by zproxyd (a plain
// memory load per Pick). Until pointed elsewhere every endpoint is healthy. Unhealthy
// endpoints are skipped; when none is eligible Pick returns kNone (the caller answers 503;
// panic mode, i.e. ignoring health when everything is down, comes with the control plane).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/net_address.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::upstream {

enum class LbAlgorithm : uint8_t {
  // Smooth weighted round robin (nginx's): per pick, every eligible endpoint's current
  // weight grows by its weight, the largest is chosen and lowered by the eligible total.
  // Gives exact weight proportions, interleaved (weights 5:1:1 -> a a b a c a a, not
  // a a a a a b c).
  kRoundRobin,
  // Weighted least connections: minimize (active + 1) / weight; ties go round robin so
  // equally loaded endpoints share the traffic instead of the first one taking it all.
  kLeastConnections,
};

struct EndpointConfig {
  NetAddress address;
  uint32_t weight = 1;  // >= 1 (config weight 0 means the default, 1)
};

struct ClusterLbConfig {
  LbAlgorithm algorithm = LbAlgorithm::kRoundRobin;
  std::vector<EndpointConfig> endpoints;
  uint32_t panic_threshold_percent = 0;  // see config.proto Cluster.panic_threshold_percent
};

// Maps a config Cluster onto a ClusterLbConfig, resolving endpoint addresses (numeric
// first; names through getaddrinfo, so this may block: call it off the worker threads).
// On error returns false and sets *error naming the field relative to the cluster, e.g.
// `endpoints[1].address: missing port`; the caller prefixes `clusters[i].`. A cluster
// without endpoints is valid (every Pick returns kNone).
bool BuildClusterLbConfig(const zproxy::v1::Cluster& cluster, ClusterLbConfig* out,
                          std::string* error);

class EndpointSet {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  explicit EndpointSet(const ClusterLbConfig& config);

  EndpointSet(const EndpointSet&) = delete;
  EndpointSet& operator=(const EndpointSet&) = delete;

  // Index of the endpoint to use, or kNone when no endpoint is healthy (other than
  // `exclude_index`). `exclude_index` is for "retry once on another endpoint": pass the
  // endpoint that just failed. With a single endpoint, excluding it yields kNone.
  uint32_t Pick(uint32_t exclude_index = kNone);

  // Active count = requests in flight: call OnConnectionOpened when an upstream connection
  // is put to work for a request (fresh connect or taken from the keep-alive pool), and
  // OnConnectionClosed when that request ends, however it ends (response done, error,
  // timeout), whether the connection then goes back to the pool or is closed. Idle pooled
  // connections are not load on the backend and are not counted. The counts are this
  // worker's view only. Calls must pair up on the same EndpointSet object: keep the set a
  // request started on alive until it ends, even across a snapshot swap.
  void OnConnectionOpened(uint32_t index);
  void OnConnectionClosed(uint32_t index);

  // Points endpoint `index`'s health at `byte` (nonzero = healthy), e.g. a slot in the
  // mmapped BPF health map; nullptr restores "always healthy". The byte must outlive
  // this set. Read with a relaxed atomic load: another process writes it.
  void SetHealthByte(uint32_t index, const uint8_t* byte);

  uint32_t size() const { return static_cast<uint32_t>(endpoints_.size()); }
  LbAlgorithm algorithm() const { return algorithm_; }
  const NetAddress& address(uint32_t index) const { return addresses_[index]; }
  uint32_t weight(uint32_t index) const { return endpoints_[index].weight; }
  uint32_t active(uint32_t index) const { return endpoints_[index].active; }
  bool healthy(uint32_t index) const;

  // Outlier ejection by the owning worker: an ejected endpoint is skipped like an
  // unhealthy one. EligibleCount tells whether ejecting one more would leave none.
  void SetEjected(uint32_t index, bool ejected) { endpoints_[index].ejected = ejected; }
  bool ejected(uint32_t index) const { return endpoints_[index].ejected; }
  uint32_t EligibleCount() const;

  // True when the last Pick ignored health because too few endpoints were healthy.
  bool last_pick_panicked() const { return panic_; }

 private:
  // Hot state together, addresses (cold, 128 bytes each) apart.
  struct Endpoint {
    const uint8_t* health;
    int64_t current_weight = 0;  // smooth weighted round robin state
    uint32_t weight = 1;
    uint32_t active = 0;
    bool ejected = false;  // passive outlier detection (this worker's view)
  };

  bool Eligible(uint32_t index, uint32_t exclude_index) const;
  uint32_t PickRoundRobin(uint32_t exclude_index);
  uint32_t PickLeastConnections(uint32_t exclude_index);

  LbAlgorithm algorithm_;
  std::vector<Endpoint> endpoints_;
  std::vector<NetAddress> addresses_;
  uint32_t next_ = 0;  // least connections: where the tie-breaking rotation starts
  uint32_t panic_percent_ = 0;
  bool panic_ = false;  // this Pick ignores health and ejection
};

}  // namespace zproxy::upstream
