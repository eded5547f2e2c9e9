#include "dataplane/worker/cluster_states.h"

#include <algorithm>
#include <cstring>

#include "common/log.h"

namespace zproxy::dataplane {

uint16_t ClusterStates::Store(std::unique_ptr<ClusterState> st) {
  for (uint16_t id = 0; id < states_.size(); id++) {
    if (states_[id] == nullptr) {
      states_[id] = std::move(st);
      return id;
    }
  }
  states_.push_back(std::move(st));
  return static_cast<uint16_t>(states_.size() - 1);
}

uint16_t ClusterStates::NewState(const std::shared_ptr<const Snapshot>& snap, size_t i) {
  auto st = std::make_unique<ClusterState>();
  const ClusterRuntime& c = snap->clusters[i];
  st->snap = snap;
  st->cfg = &c;
  st->definition = snap->config.clusters(static_cast<int>(i)).SerializeAsString();
  st->lb = std::make_unique<upstream::EndpointSet>(c.lb);
  for (uint32_t e = 0; e < c.health.size() && e < st->lb->size(); e++) {
    st->lb->SetHealthByte(e, c.health[e]);  // nullptr = always healthy
  }
  // Start each worker's rotation at a different endpoint, so that with several workers
  // the first requests do not all go to endpoint 0.
  for (uint32_t k = 0; st->lb->size() != 0 && k < worker_index_ % st->lb->size(); k++) {
    st->lb->Pick();
  }
  // type original_destination has no endpoints: its pool's slots are the destinations
  // its clients dialled, assigned as they come (DestinationSlots), plus one for
  // connections that found no slot free. Outlier detection does not apply (one entry, so
  // lookups by endpoint stay valid).
  size_t slots = c.lb.endpoints.size();
  if (c.original_destination) {
    st->dst_slots.Init();
    slots = st->dst_slots.pool_slots();
  }
  st->pool.Init(PoolLinkOf{conns_}, slots);
  st->outliers.resize(c.original_destination ? 1 : slots);
  if (c.tls != nullptr) st->tls_sessions.Resize(c.endpoint_names.size());
  st->t_connect = timers_->ListFor(c.connect_timeout_ms);
  st->t_read = timers_->ListFor(c.read_timeout_ms);
  st->t_pool = timers_->ListFor(c.idle_timeout_ms);
  return Store(std::move(st));
}

// A listener's CONNECT upstreams: a state without endpoints (each target comes from its
// request) whose connect timer list is the connect block's timeout. One pool slot, never
// used (tunnels are not reusable), so the pool's endpoint lookup stays valid.
uint16_t ClusterStates::NewConnectState(const std::shared_ptr<const Snapshot>& snap,
                                        size_t listener) {
  auto st = std::make_unique<ClusterState>();
  const ClusterRuntime& c = snap->listeners[listener].connect->upstream;
  st->snap = snap;
  st->cfg = &c;
  st->connect = snap->listeners[listener].connect.get();
  st->definition = c.name;
  st->lb = std::make_unique<upstream::EndpointSet>(c.lb);
  st->pool.Init(PoolLinkOf{conns_}, 1);
  st->outliers.resize(1);
  st->t_connect = timers_->ListFor(c.connect_timeout_ms);
  st->t_read = timers_->ListFor(c.read_timeout_ms);
  st->t_pool = timers_->ListFor(c.idle_timeout_ms);
  return Store(std::move(st));
}

void ClusterStates::Init(const std::shared_ptr<const Snapshot>& snap) {
  for (size_t i = 0; i < snap->clusters.size(); i++) by_cluster_.push_back(NewState(snap, i));
  SetupConnectStates(snap);
}

// New connect states for every snapshot (they hold no pooled connections, so nothing is
// lost); tunnels still open keep their old state until they end.
void ClusterStates::SetupConnectStates(const std::shared_ptr<const Snapshot>& snap) {
  for (uint16_t old : by_listener_) {
    if (old == kNoConnect) continue;
    Get(old).retired = true;
    Retire(old);
  }
  by_listener_.assign(snap->listeners.size(), kNoConnect);
  for (size_t l = 0; l < snap->listeners.size(); l++) {
    if (snap->listeners[l].connect != nullptr) by_listener_[l] = NewConnectState(snap, l);
  }
}

void ClusterStates::Unref(uint16_t id) {
  ClusterState& st = Get(id);
  if (--st.refs == 0 && st.retired) states_[id].reset();
}

void ClusterStates::Retire(uint16_t id) {
  states_[id]->refs++;  // hold it across the check in Unref
  Unref(id);
}

std::vector<uint16_t> ClusterStates::Remap(const std::shared_ptr<const Snapshot>& snap) {
  std::vector<uint16_t> mapping(snap->clusters.size());
  std::vector<bool> kept(states_.size(), false);
  for (size_t i = 0; i < snap->clusters.size(); i++) {
    std::string def = snap->config.clusters(static_cast<int>(i)).SerializeAsString();
    uint16_t reuse = 0xffff;
    for (uint16_t old : by_cluster_) {
      ClusterState& st = Get(old);
      if (!kept[old] && st.cfg->name == snap->clusters[i].name && st.definition == def) {
        reuse = old;
        break;
      }
    }
    if (reuse != 0xffff) {
      // Same definition: keep pools, balancer and outlier state. Point it at the new
      // snapshot's copy (equal content) so the old snapshot can be released.
      ClusterState& st = Get(reuse);
      st.snap = snap;
      st.cfg = &snap->clusters[i];
      for (uint32_t e = 0; e < st.cfg->health.size() && e < st.lb->size(); e++) {
        st.lb->SetHealthByte(e, st.cfg->health[e]);
      }
      kept[reuse] = true;
      mapping[i] = reuse;
    } else {
      mapping[i] = NewState(snap, i);
      if (mapping[i] >= kept.size()) kept.resize(mapping[i] + 1u, false);
      kept[mapping[i]] = true;
      for (uint16_t old : by_cluster_) {
        if (!kept[old] && Get(old).cfg->name == snap->clusters[i].name) {
          InheritOutliers(Get(old), Get(mapping[i]));
          break;
        }
      }
    }
  }
  std::vector<uint16_t> unused;
  for (uint16_t old : by_cluster_) {
    if (!kept[old]) unused.push_back(old);
  }
  by_cluster_ = std::move(mapping);
  return unused;
}

// A changed cluster (an endpoint added or removed, e.g. a DNS name that resolves to other
// addresses now) starts a new state; endpoints at the same address keep this worker's
// outlier verdict, so an ejected backend is not handed traffic again by a config push.
void ClusterStates::InheritOutliers(ClusterState& old, ClusterState& fresh) {
  const auto& from = old.cfg->lb.endpoints;
  const auto& to = fresh.cfg->lb.endpoints;
  for (uint32_t e = 0; e < to.size() && e < fresh.outliers.size(); e++) {
    for (uint32_t o = 0; o < from.size() && o < old.outliers.size(); o++) {
      const NetAddress& a = to[e].address;
      const NetAddress& b = from[o].address;
      if (a.len != b.len || memcmp(&a.storage, &b.storage, a.len) != 0) continue;
      fresh.outliers[e] = old.outliers[o];
      if (fresh.outliers[e].ejected) {
        fresh.lb->SetEjected(e, true);
        old.outliers[o].ejected = false;  // the ejected gauge moves with it (counted once)
      }
      break;
    }
  }
}

void ClusterStates::RecordResult(uint16_t id, uint32_t endpoint, bool ok, uint32_t now_ms) {
  ClusterState& cs = Get(id);
  const ClusterRuntime& cfg = *cs.cfg;
  if (cfg.outlier_failures == 0 || endpoint >= cs.outliers.size()) return;
  OutlierState& st = cs.outliers[endpoint];
  if (ok) {
    st.failures = 0;
    return;
  }
  if (++st.failures < cfg.outlier_failures || st.ejected) return;
  st.failures = 0;
  upstream::EndpointSet& lb = *cs.lb;
  // Never eject the last eligible endpoint: a degraded answer beats none.
  if (lb.EligibleCount() <= 1) return;
  // A long quiet period since the last ejection starts the doubling over.
  if (st.ejections != 0 && now_ms - st.last_ejected_ms > cfg.outlier_max_ms * 2) st.ejections = 0;
  uint64_t period = static_cast<uint64_t>(cfg.outlier_base_ms)
                    << std::min<uint8_t>(st.ejections, 16);
  if (period > cfg.outlier_max_ms) period = cfg.outlier_max_ms;
  st.ejected = true;
  st.until_ms = now_ms + static_cast<uint32_t>(period);
  st.last_ejected_ms = now_ms;
  if (st.ejections < 255) st.ejections++;
  lb.SetEjected(endpoint, true);
  stats_->upstream_ejections.Add();
  stats_->upstream_ejected.Add();
  ZLOG_WARN("worker %u: ejecting %s endpoint %s for %lu ms after %u consecutive failures",
            worker_index_, cfg.name.c_str(), cfg.endpoint_names[endpoint].c_str(),
            static_cast<unsigned long>(period), cfg.outlier_failures);
}

void ClusterStates::ExpireEjections(uint32_t now_ms) {
  for (auto& cs : states_) {
    if (cs == nullptr) continue;
    for (size_t e = 0; e < cs->outliers.size(); e++) {
      OutlierState& st = cs->outliers[e];
      if (!st.ejected || static_cast<int32_t>(now_ms - st.until_ms) < 0) continue;
      st.ejected = false;
      cs->lb->SetEjected(static_cast<uint32_t>(e), false);
      stats_->upstream_ejected.Sub();
      ZLOG_INFO("worker %u: %s endpoint %s back in rotation", worker_index_, cs->cfg->name.c_str(),
                cs->cfg->endpoint_names[e].c_str());
    }
  }
}

}  // namespace zproxy::dataplane
