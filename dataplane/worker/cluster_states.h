// This worker's state for each cluster definition: balancer, connection pool, passive
// outlier detection, TLS session cache, timer lists. Exchanges and upstream connections
// refer to a state by id (Exchange::cluster, Conn::owner of upstream connections) and
// hold a reference, so a config change leaves in-flight requests on the state (and
// config) they started with; a state whose cluster changed or vanished is retired and
// freed when unused. One per worker, used by its thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/metrics/worker_stats.h"
#include "dataplane/sidecar/destination_slots.h"
#include "dataplane/snapshot.h"
#include "dataplane/tls/session_cache.h"
#include "dataplane/upstream/connection_pool.h"
#include "dataplane/upstream/lb.h"
#include "dataplane/worker/conn.h"
#include "dataplane/worker/slab.h"
#include "dataplane/worker/timer_list.h"

namespace zproxy::dataplane {

// How the intrusive lists find their links inside a connection slot.
struct TimerLinkOf {
  Slab<Conn, 1024>* conns;
  TimerLink& operator()(uint32_t idx) const { return conns->Get(idx).timer; }
};
struct PoolLinkOf {
  Slab<Conn, 1024>* conns;
  upstream::PoolLink& operator()(uint32_t idx) const { return conns->Get(idx).pool; }
};
using ConnTimers = TimerLists<TimerLinkOf>;

// Passive outlier detection: this worker's view of one endpoint.
struct OutlierState {
  uint16_t failures = 0;  // consecutive
  uint8_t ejections = 0;  // in a row; the ejection period doubles with each
  bool ejected = false;
  uint32_t until_ms = 0;
  uint32_t last_ejected_ms = 0;
};

struct ClusterState {
  std::shared_ptr<const Snapshot> snap;  // keeps *cfg alive
  const ClusterRuntime* cfg = nullptr;
  std::string definition;  // serialized config Cluster: equal definition => reusable
  std::unique_ptr<upstream::EndpointSet> lb;
  upstream::ConnectionPool<PoolLinkOf> pool;  // upstream connections by endpoint
  // type original_destination: the pool's slots are destinations, not endpoints (empty
  // for other clusters).
  sidecar::DestinationSlots dst_slots;
  std::vector<OutlierState> outliers;       // [endpoint]
  tls::SessionCache tls_sessions;           // [endpoint]: clusters with tls resume these
  const ConnectRuntime* connect = nullptr;  // a listener's CONNECT state: its allowlist
  uint16_t t_connect = 0, t_read = 0, t_pool = 0;
  uint32_t refs = 0;
  // Exchanges of this worker that are retrying under a route's policy: the retry budget
  // (ClusterRuntime::retry_budget_percent) bounds them against `refs`.
  uint32_t retries = 0;
  bool retired = false;
};

class ClusterStates {
 public:
  ClusterStates(uint32_t worker_index, WorkerStats* stats, ConnTimers* timers,
                Slab<Conn, 1024>* conns)
      : worker_index_(worker_index), stats_(stats), timers_(timers), conns_(conns) {}

  ClusterState& Get(uint16_t id) { return *states_[id]; }
  // The state of the current snapshot's cluster `index`, and of a listener's CONNECT
  // upstreams (kNoConnect when it has no connect block).
  uint16_t ForCluster(size_t index) const { return by_cluster_[index]; }
  static constexpr uint16_t kNoConnect = 0xffff;
  uint16_t ForConnect(size_t listener) const { return by_listener_[listener]; }
  void Ref(uint16_t id) { states_[id]->refs++; }
  void Unref(uint16_t id);

  // The first snapshot.
  void Init(const std::shared_ptr<const Snapshot>& snap);
  // A new snapshot: clusters whose definition did not change keep their state (pools,
  // balancer, outliers); the rest are retired. close_idle(conn) closes each idle pooled
  // connection of a retired state (and must take it out of the pool).
  template <typename CloseIdle>
  void Apply(const std::shared_ptr<const Snapshot>& snap, CloseIdle close_idle);

  // Passive outlier detection: an endpoint that fails several requests in a row
  // (connect errors, resets, read timeouts, malformed responses, 5xx) is ejected from
  // this worker's balancing for a period that doubles with each consecutive ejection.
  void RecordResult(uint16_t id, uint32_t endpoint, bool ok, uint32_t now_ms);
  void ExpireEjections(uint32_t now_ms);

 private:
  uint16_t NewState(const std::shared_ptr<const Snapshot>& snap, size_t cluster_index);
  uint16_t NewConnectState(const std::shared_ptr<const Snapshot>& snap, size_t listener);
  uint16_t Store(std::unique_ptr<ClusterState> st);
  void SetupConnectStates(const std::shared_ptr<const Snapshot>& snap);
  // Maps the new snapshot's clusters onto states (reusing unchanged ones); returns the
  // ids no longer used.
  std::vector<uint16_t> Remap(const std::shared_ptr<const Snapshot>& snap);
  void Retire(uint16_t id);
  void InheritOutliers(ClusterState& old, ClusterState& fresh);

  uint32_t worker_index_;
  WorkerStats* stats_;
  ConnTimers* timers_;
  Slab<Conn, 1024>* conns_;
  std::vector<std::unique_ptr<ClusterState>> states_;  // index = state id; null = free
  std::vector<uint16_t> by_cluster_;   // current snapshot's cluster index -> state id
  std::vector<uint16_t> by_listener_;  // listener index -> its CONNECT state id
};

template <typename CloseIdle>
void ClusterStates::Apply(const std::shared_ptr<const Snapshot>& snap, CloseIdle close_idle) {
  for (uint16_t old : Remap(snap)) {
    ClusterState& st = Get(old);
    st.retired = true;
    // Idle pooled connections go now; in-flight requests finish on the state, which is
    // freed with its last reference.
    for (uint32_t e = 0; e < st.pool.endpoints(); e++) {
      uint32_t idle;
      while ((idle = st.pool.AnyIdle(e)) != upstream::kNoConn) close_idle(idle);
    }
    Retire(old);
  }
  SetupConnectStates(snap);
}

}  // namespace zproxy::dataplane
