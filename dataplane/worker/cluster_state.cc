// Config snapshots inside a worker: per-cluster state that survives config changes when
// the cluster's definition did not change, retirement of the rest, and the mailbox
// through which ConfigApplier hands over new snapshots.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

uint16_t Worker::NewClusterState(const std::shared_ptr<const Snapshot>& snap, size_t i) {
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
  for (uint32_t k = 0; st->lb->size() != 0 && k < options_.index % st->lb->size(); k++) {
    st->lb->Pick();
  }
  st->pool.Init(PoolLinkOf{&conns_}, c.lb.endpoints.size());
  st->outliers.resize(c.lb.endpoints.size());
  if (c.tls != nullptr) st->tls_sessions.Resize(c.endpoint_names.size());
  st->t_connect = timers_.ListFor(c.connect_timeout_ms);
  st->t_read = timers_.ListFor(c.read_timeout_ms);
  st->t_pool = timers_.ListFor(c.idle_timeout_ms);
  for (uint16_t id = 0; id < cstates_.size(); id++) {
    if (cstates_[id] == nullptr) {
      cstates_[id] = std::move(st);
      return id;
    }
  }
  cstates_.push_back(std::move(st));
  return static_cast<uint16_t>(cstates_.size() - 1);
}

// A listener's CONNECT upstreams: a state without endpoints (each target comes from its
// request) whose connect timer list is the connect block's timeout. One pool slot, never
// used (tunnels are not reusable), so ReleaseUpstream's pool lookup stays valid.
uint16_t Worker::NewConnectState(const std::shared_ptr<const Snapshot>& snap, size_t listener) {
  auto st = std::make_unique<ClusterState>();
  const ClusterRuntime& c = snap->listeners[listener].connect->upstream;
  st->snap = snap;
  st->cfg = &c;
  st->connect = snap->listeners[listener].connect.get();
  st->definition = c.name;
  st->lb = std::make_unique<upstream::EndpointSet>(c.lb);
  st->pool.Init(PoolLinkOf{&conns_}, 1);
  st->outliers.resize(1);
  st->t_connect = timers_.ListFor(c.connect_timeout_ms);
  st->t_read = timers_.ListFor(c.read_timeout_ms);
  st->t_pool = timers_.ListFor(c.idle_timeout_ms);
  for (uint16_t id = 0; id < cstates_.size(); id++) {
    if (cstates_[id] == nullptr) {
      cstates_[id] = std::move(st);
      return id;
    }
  }
  cstates_.push_back(std::move(st));
  return static_cast<uint16_t>(cstates_.size() - 1);
}

// New connect states for every snapshot (they hold no pooled connections, so nothing is
// lost); tunnels still open keep their old state until they end.
void Worker::SetupConnectStates(const std::shared_ptr<const Snapshot>& snap) {
  for (uint16_t old : connect_state_) {
    if (old == kNoConnect) continue;
    Cs(old).retired = true;
    RefCluster(old);  // hold it across the check in UnrefCluster
    UnrefCluster(old);
  }
  connect_state_.assign(snap->listeners.size(), kNoConnect);
  for (size_t l = 0; l < snap->listeners.size(); l++) {
    if (snap->listeners[l].connect != nullptr) connect_state_[l] = NewConnectState(snap, l);
  }
}

void Worker::UnrefCluster(uint16_t id) {
  ClusterState& st = Cs(id);
  if (--st.refs == 0 && st.retired) cstates_[id].reset();
}

void Worker::SetupListenerTimers() {
  t_client_idle_.clear();
  t_client_header_.clear();
  t_tls_handshake_.clear();
  t_connect_idle_.clear();
  for (const auto& l : snap_->listeners) {
    t_client_idle_.push_back(timers_.ListFor(l.idle_timeout_ms));
    t_client_header_.push_back(timers_.ListFor(l.header_timeout_ms));
    t_tls_handshake_.push_back(timers_.ListFor(l.handshake_timeout_ms));
    t_connect_idle_.push_back(
        timers_.ListFor(l.connect != nullptr ? l.connect->idle_timeout_ms : l.idle_timeout_ms));
  }
}

void Worker::ApplySnapshot(std::shared_ptr<const Snapshot> snap) {
  std::vector<uint16_t> mapping(snap->clusters.size());
  std::vector<bool> kept(cstates_.size(), false);
  for (size_t i = 0; i < snap->clusters.size(); i++) {
    std::string def = snap->config.clusters(static_cast<int>(i)).SerializeAsString();
    uint16_t reuse = 0xffff;
    for (uint16_t old : cluster_state_) {
      ClusterState& st = Cs(old);
      if (!kept[old] && st.cfg->name == snap->clusters[i].name && st.definition == def) {
        reuse = old;
        break;
      }
    }
    if (reuse != 0xffff) {
      // Same definition: keep pools, balancer and outlier state. Point it at the new
      // snapshot's copy (equal content) so the old snapshot can be released.
      ClusterState& st = Cs(reuse);
      st.snap = snap;
      st.cfg = &snap->clusters[i];
      for (uint32_t e = 0; e < st.cfg->health.size() && e < st.lb->size(); e++) {
        st.lb->SetHealthByte(e, st.cfg->health[e]);
      }
      kept[reuse] = true;
      mapping[i] = reuse;
    } else {
      mapping[i] = NewClusterState(snap, i);
      if (mapping[i] >= kept.size()) kept.resize(mapping[i] + 1u, false);
      kept[mapping[i]] = true;
    }
  }
  // Retire what the new snapshot no longer uses: idle pooled connections go now,
  // in-flight requests finish on their state, which is freed with its last reference.
  for (uint16_t old : cluster_state_) {
    if (kept[old]) continue;
    ClusterState& st = Cs(old);
    st.retired = true;
    for (uint32_t e = 0; e < st.pool.endpoints(); e++) {
      uint32_t idle;
      while ((idle = st.pool.AnyIdle(e)) != upstream::kNoConn) CloseConn(idle);  // unlinks it
    }
    st.refs++;  // hold it across the check below
    UnrefCluster(old);
  }
  cluster_state_ = std::move(mapping);
  SetupConnectStates(snap);
  snap_ = std::move(snap);
  SetupListenerTimers();
  applied_version_.store(snap_->version);
  applied_generation_.store(snap_->generation);
}

void Worker::PostSnapshot(std::shared_ptr<const Snapshot> snapshot) {
  {
    std::lock_guard<std::mutex> lock(mailbox_mu_);
    mailbox_ = std::move(snapshot);
  }
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;  // an eventfd write only fails on counter overflow, which still wakes
}

void Worker::ArmWake() {
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_buf_, sizeof(wake_buf_), 0);
  io_uring_sqe_set_data64(sqe, io::UserData{io::Op::kWake, 0, 0, 0}.Pack());
}

void Worker::OnWake() {
  ArmWake();
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard<std::mutex> lock(mailbox_mu_);
    snap = std::move(mailbox_);
  }
  if (snap != nullptr) ApplySnapshot(std::move(snap));
  OnDnsAnswers();  // the resolver wakes the loop through the same eventfd
}

}  // namespace zproxy::dataplane
