#include "controlplane/fleet/fleet_source.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <chrono>

#include "common/log.h"
#include "controlplane/config/defaults.h"
#include "controlplane/fleet/fleet_doc.h"
#include "controlplane/fleet/watch_plan.h"
#include "controlplane/state/config_ops.h"

namespace zproxy::fleet {
namespace {

using state::OpStatus;
using zproxy::v1::Config;

long long Ll(int64_t v) { return static_cast<long long>(v); }

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

FleetSource::FleetSource(std::unique_ptr<EtcdClient> client, state::ConfigManager* manager,
                         Options options, HealthFn health)
    : client_(std::move(client)),
      manager_(manager),
      options_(std::move(options)),
      health_(std::move(health)),
      config_key_(ConfigKey(options_.prefix)) {
  ever_connected_ = options_.unreachable_at_start;
}

void FleetSource::Start() {
  watcher_ = std::thread([this] { WatchLoop(); });
  publisher_ = std::thread([this] { PublishLoop(); });
}

void FleetSource::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    stop_ = true;
    if (watch_ != nullptr) watch_->Cancel();
  }
  cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  if (publisher_.joinable()) publisher_.join();
}

bool FleetSource::Sleep(int64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_; });
  return !stop_;
}

bool FleetSource::SleepUnlessPublish(int64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_ || publish_now_; });
  publish_now_ = false;
  return !stop_;
}

void FleetSource::SetConnected(bool connected, const std::string& error) {
  const int64_t applied = manager_->etcd_revision();  // not under mu_: no lock order to keep
  std::lock_guard<std::mutex> lock(mu_);
  if (!connected) last_error_ = error;
  if (connected == connected_ && ever_connected_) return;
  connected_ = connected;
  // One line per state change, not per retry.
  if (connected) {
    ever_connected_ = true;
    ZLOG_INFO("fleet: connected to etcd at %s (prefix %s, node %s)", client_->endpoint().c_str(),
              options_.prefix.c_str(), options_.node.c_str());
  } else {
    ever_connected_ = true;
    ZLOG_WARN("fleet: etcd unreachable (%s): serving fleet revision %lld, retrying", error.c_str(),
              Ll(applied));
  }
}

void FleetSource::Refuse(int64_t revision, const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (refused_revision_ == revision && refused_error_ == why) return;  // logged already
    refused_revision_ = revision;
    refused_error_ = why;
    publish_now_ = true;
  }
  cv_.notify_all();
  ZLOG_ERROR("fleet: refusing revision %lld of %s: %s; still serving revision %lld", Ll(revision),
             config_key_.c_str(), why.c_str(), Ll(manager_->etcd_revision()));
}

bool FleetSource::Apply(const mvccpb::KeyValue& kv, bool follow_store) {
  const int64_t revision = kv.mod_revision();
  Config fleet;
  std::string error;
  if (!ParseFleet(kv.value(), &fleet, &error)) {
    Refuse(revision, error);
    return true;
  }
  auto edit = [&fleet](Config* c) {
    *c = MergeNode(*c, fleet);
    return OpStatus::Ok();
  };
  const uint64_t version_before = manager_->Current().version;
  controlplane::ConfigStore::Snapshot snap;
  OpStatus st = manager_->ApplyFleet(edit, revision, follow_store, &snap);
  if (st.code == OpStatus::kUnavailable || st.code == OpStatus::kInternal) {
    // Not the config's fault (the data plane is restarting, state_dir full): try again.
    ZLOG_WARN("fleet: revision %lld not applied yet (%s); retrying", Ll(revision),
              st.message.c_str());
    return false;
  }
  if (!st.ok()) {
    Refuse(revision, st.message);
    return true;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    refused_revision_ = 0;
    refused_error_.clear();
    publish_now_ = true;  // fleet status shows the new revision without waiting a tick
  }
  cv_.notify_all();
  if (snap.version != version_before) {
    ZLOG_INFO("fleet: revision %lld applied (config version %llu)", Ll(revision),
              static_cast<unsigned long long>(snap.version));
  }
  return true;
}

void FleetSource::WatchLoop() {
  int64_t backoff_ms = 100;
  bool missing_logged = false;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    mvccpb::KeyValue kv;
    bool found = false;
    int64_t header = 0;
    std::string error;
    if (!client_->Get(config_key_, &kv, &found, &header, &error)) {
      SetConnected(false, error);
      if (!Sleep(backoff_ms)) return;
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 2000);
      continue;
    }
    SetConnected(true, "");
    backoff_ms = 100;
    const int64_t applied = manager_->etcd_revision();
    ReadPlan plan = PlanAfterRead(applied, found, kv.mod_revision(), header);
    if (!found && !missing_logged) {
      ZLOG_WARN("fleet: %s does not exist (deleted?): serving revision %lld until it is written",
                config_key_.c_str(), Ll(applied));
    }
    missing_logged = !found;
    if (plan.store_went_back) {
      ZLOG_WARN(
          "fleet: etcd's %s is at revision %lld, older than the applied %lld (etcd restored "
          "from an older snapshot?): following the store",
          config_key_.c_str(), Ll(kv.mod_revision()), Ll(applied));
    }
    if (plan.apply && !Apply(kv, plan.store_went_back)) {
      // Read again after a pause: the key's revision is still not the applied one.
      if (!Sleep(backoff_ms)) return;
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 2000);
      continue;
    }
    std::unique_ptr<EtcdClient::Watch> watch =
        client_->WatchKey(config_key_, plan.watch_from, &error);
    if (watch == nullptr) {
      SetConnected(false, error);
      if (!Sleep(backoff_ms)) return;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) {
        watch->Close();
        return;
      }
      watch_ = watch.get();
    }
    etcdserverpb::WatchResponse resp;
    bool retry = false;
    while (!retry && watch->Next(&resp, &error)) {
      if (WatchNeedsReread(resp.compact_revision(), resp.canceled())) {
        ZLOG_INFO("fleet: watch %s (compacted up to %lld%s%s): re-reading %s",
                  resp.compact_revision() > 0 ? "cancelled" : "ended", Ll(resp.compact_revision()),
                  resp.cancel_reason().empty() ? "" : ", ", resp.cancel_reason().c_str(),
                  config_key_.c_str());
        error.clear();
        break;
      }
      for (const mvccpb::Event& ev : resp.events()) {
        if (ev.type() == mvccpb::Event::PUT) {
          // A failed apply ends the watch: the re-read that follows retries it.
          if (!Apply(ev.kv(), false)) {
            retry = true;
            break;
          }
        } else {
          ZLOG_WARN("fleet: %s deleted at revision %lld: serving revision %lld until it is written",
                    config_key_.c_str(), Ll(ev.kv().mod_revision()), Ll(manager_->etcd_revision()));
        }
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      watch_ = nullptr;
    }
    watch->Close();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    if (retry) {
      if (!Sleep(backoff_ms)) return;
      backoff_ms = std::min<int64_t>(backoff_ms * 2, 2000);
    } else if (!error.empty()) {
      SetConnected(false, error);
      if (!Sleep(backoff_ms)) return;
    }
  }
}

std::string FleetSource::NodeValue() {
  zproxy::v1::FleetNode n;
  n.set_name(options_.node);
  n.set_applied_revision(manager_->etcd_revision());
  n.set_config_version(manager_->Current().version);
  if (health_) {
    auto [healthy, unhealthy] = health_();
    n.set_endpoints_healthy(healthy);
    n.set_endpoints_unhealthy(unhealthy);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    n.set_refused_revision(refused_revision_);
    n.set_refused_error(refused_error_);
  }
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(n, &out, opts);
  return out;
}

void FleetSource::PublishLoop() {
  const std::string key = NodeKey(options_.prefix, options_.node);
  const int64_t ttl = std::max<uint32_t>(options_.node_ttl_s, 2);
  int64_t lease = 0;
  std::string published;
  bool name_clash_logged = false;
  auto last_keepalive = std::chrono::steady_clock::now();
  while (SleepUnlessPublish(lease == 0 ? 200 : 500)) {
    std::string error;
    if (lease == 0) {
      if (!client_->LeaseGrant(ttl, &lease, &error)) {
        lease = 0;
        continue;  // the watcher logs etcd's state
      }
      // Names must be unique in the fleet: a live key under another lease is another node,
      // or this node's previous run that could not revoke its lease (etcd was away).
      mvccpb::KeyValue other;
      bool found = false;
      int64_t header = 0;
      if (client_->Get(key, &other, &found, &header, &error) && found && other.lease() != lease &&
          !name_clash_logged) {
        ZLOG_WARN(
            "fleet: %s is held under another lease (%llx): another node with this name (node.name "
            "must be unique in the fleet), or this node's previous run until its lease expires",
            key.c_str(), static_cast<unsigned long long>(other.lease()));
        name_clash_logged = true;
      }
      published.clear();
      last_keepalive = std::chrono::steady_clock::now();
    } else if (std::chrono::steady_clock::now() - last_keepalive >= std::chrono::seconds(ttl) / 3) {
      int64_t left = 0;
      if (!client_->LeaseKeepAlive(lease, &left, &error)) continue;
      last_keepalive = std::chrono::steady_clock::now();
      if (left <= 0) {
        ZLOG_WARN("fleet: the lease of %s expired (etcd unreachable for %llds?): re-publishing",
                  key.c_str(), static_cast<long long>(ttl));
        lease = 0;
        continue;
      }
    }
    std::string value = NodeValue();
    if (value == published) continue;
    // updated_unix_ms only when something else changed: an unchanged node writes nothing.
    zproxy::v1::FleetNode n;
    (void)google::protobuf::util::JsonStringToMessage(value, &n);
    n.set_updated_unix_ms(UnixMs());
    google::protobuf::util::JsonPrintOptions opts;
    opts.preserve_proto_field_names = true;
    std::string stamped;
    (void)google::protobuf::util::MessageToJsonString(n, &stamped, opts);
    if (client_->Put(key, stamped, lease, &error)) published = value;
  }
  if (lease != 0) {
    std::string error;
    (void)client_->LeaseRevoke(lease, &error);
  }
}

OpStatus FleetSource::Mutate(uint64_t expected_revision, const state::ConfigManager::EditFn& edit,
                             controlplane::ConfigStore::Snapshot* out, int64_t* revision) {
  std::lock_guard<std::mutex> write_lock(write_mu_);
  for (int attempt = 0;; ++attempt) {
    mvccpb::KeyValue kv;
    bool found = false;
    int64_t header = 0;
    std::string error;
    if (!client_->Get(config_key_, &kv, &found, &header, &error)) {
      return OpStatus::Error(OpStatus::kUnavailable,
                             error + "; nothing changed (the fleet config is in etcd)");
    }
    const int64_t read_revision = found ? kv.mod_revision() : 0;
    if (expected_revision != 0 && static_cast<int64_t>(expected_revision) != read_revision) {
      return OpStatus::Error(OpStatus::kFailedPrecondition,
                             "expected_version " + std::to_string(expected_revision) +
                                 " is stale: the fleet config is at revision " +
                                 std::to_string(read_revision) + " (re-read and retry)");
    }
    Config fleet_before;
    if (found && !ParseFleet(kv.value(), &fleet_before, &error)) {
      // Only a full replace (ApplyConfig) can repair it; other edits need a base.
      fleet_before.Clear();
    }
    const controlplane::ConfigStore::Snapshot current = manager_->Current();
    Config base = MergeNode(*current.config, fleet_before);
    config::ApplyDefaults(&base);
    Config edited = base;
    OpStatus st = edit(&edited);
    if (!st.ok()) return st;
    config::ApplyDefaults(&edited);
    std::vector<std::string> local = NodeLocalChanges(base, edited);
    if (!local.empty()) {
      std::string lines;
      for (const std::string& f : local) {
        lines += (lines.empty() ? "" : "\n") + f +
                 ": node-local in fleet mode (config_source.etcd): change it in this node's "
                 "file, not through the Admin API";
      }
      return OpStatus::Error(OpStatus::kInvalidArgument, lines);
    }
    Config fleet_after = UnmergeNode(edited, fleet_before, current.config->node());
    Config candidate = MergeNode(*current.config, fleet_after);
    config::ApplyDefaults(&candidate);
    st = state::CheckCandidate(*current.config, candidate);
    if (!st.ok()) return st;
    if (found &&
        google::protobuf::util::MessageDifferencer::Equals(FleetPart(base), FleetPart(edited))) {
      *out = current;  // nothing to write
      *revision = read_revision;
      return OpStatus::Ok();
    }
    EtcdClient::TxnOutcome txn;
    if (!client_->PutIf(config_key_, SerializeFleet(fleet_after), read_revision, &txn, &error)) {
      return OpStatus::Error(OpStatus::kUnavailable,
                             error + "; the change may or may not be written (re-read)");
    }
    if (!txn.succeeded) {
      const int64_t now = txn.found ? txn.current.mod_revision() : 0;
      if (expected_revision == 0 && attempt < 5) continue;  // re-read, re-apply the edit
      return OpStatus::Error(OpStatus::kFailedPrecondition,
                             "the fleet config changed concurrently: it is at revision " +
                                 std::to_string(now) + ", not " + std::to_string(read_revision) +
                                 " as read (re-read and retry)");
    }
    *revision = txn.revision;
    ZLOG_INFO("fleet: revision %lld written through this node's Admin API", Ll(txn.revision));
    // Applied here at once (the watch delivers it too and is deduplicated by revision).
    mvccpb::KeyValue written;
    written.set_key(config_key_);
    written.set_mod_revision(txn.revision);
    auto apply = [&fleet_after](Config* c) {
      *c = MergeNode(*c, fleet_after);
      return OpStatus::Ok();
    };
    st = manager_->ApplyFleet(apply, txn.revision, false, out);
    if (!st.ok()) {
      return OpStatus::Error(st.code, "written to etcd as revision " +
                                          std::to_string(txn.revision) +
                                          ", but this node did not apply it: " + st.message);
    }
    return OpStatus::Ok();
  }
}

void FleetSource::FillStatus(zproxy::v1::FleetStatus* out) const {
  out->set_prefix(options_.prefix);
  out->set_node(options_.node);
  out->set_applied_revision(manager_->etcd_revision());
  out->set_endpoint(client_->endpoint());
  std::lock_guard<std::mutex> lock(mu_);
  out->set_connected(connected_);
  out->set_refused_revision(refused_revision_);
  out->set_refused_error(refused_error_);
  if (!connected_) out->set_last_error(last_error_);
}

OpStatus FleetSource::Nodes(zproxy::v1::FleetStatusResponse* out) {
  out->set_prefix(options_.prefix);
  std::vector<mvccpb::KeyValue> kvs;
  int64_t header = 0;
  std::string error;
  if (!client_->GetPrefix(NodesPrefix(options_.prefix), &kvs, &header, &error)) {
    return OpStatus::Error(OpStatus::kUnavailable, error);
  }
  mvccpb::KeyValue kv;
  bool found = false;
  if (!client_->Get(config_key_, &kv, &found, &header, &error)) {
    return OpStatus::Error(OpStatus::kUnavailable, error);
  }
  out->set_revision(found ? kv.mod_revision() : 0);
  for (const auto& n : kvs) {
    zproxy::v1::FleetNode* node = out->add_nodes();
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = true;  // published by a newer zproxyd
    if (!google::protobuf::util::JsonStringToMessage(n.value(), node, opts).ok()) {
      node->set_name(n.key().substr(NodesPrefix(options_.prefix).size()));
      node->set_refused_error("unreadable node key");
    }
  }
  return OpStatus::Ok();
}

std::string FleetSource::PrometheusText() const {
  zproxy::v1::FleetStatus s;
  FillStatus(&s);
  std::string out;
  out += "# HELP zproxy_config_etcd_revision etcd revision of the fleet config this node serves.\n";
  out += "# TYPE zproxy_config_etcd_revision gauge\n";
  out += "zproxy_config_etcd_revision " + std::to_string(s.applied_revision()) + "\n";
  out += "# HELP zproxy_fleet_etcd_connected 1 while zproxyd reaches etcd.\n";
  out += "# TYPE zproxy_fleet_etcd_connected gauge\n";
  out += "zproxy_fleet_etcd_connected " + std::string(s.connected() ? "1" : "0") + "\n";
  out += "# HELP zproxy_fleet_refused_revision Last fleet revision refused as invalid (0: none).\n";
  out += "# TYPE zproxy_fleet_refused_revision gauge\n";
  out += "zproxy_fleet_refused_revision " + std::to_string(s.refused_revision()) + "\n";
  return out;
}

}  // namespace zproxy::fleet
