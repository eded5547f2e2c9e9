// Fleet mode at run time (docs/fleet.md): the fleet config in etcd is watched and applied
// through ConfigManager (so validation, the state_dir snapshot and the push to the data
// plane are the file's own path); the Admin API's writes become etcd transactions; the
// node publishes itself under a lease for `zproxyctl fleet status`.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "controlplane/fleet/etcd_client.h"
#include "controlplane/state/config_manager.h"
#include "zproxy/v1/admin.pb.h"

namespace zproxy::fleet {

class FleetSource {
 public:
  struct Options {
    std::string prefix;  // normalized ("/zproxy/a/")
    std::string node;    // this node's name
    uint32_t node_ttl_s = 10;
    // Start-up could not read etcd and said so: the watcher logs only the reconnect.
    bool unreachable_at_start = false;
  };
  // Healthy and unhealthy endpoint counts of this node's checker, for its node key.
  using HealthFn = std::function<std::pair<uint32_t, uint32_t>()>;

  FleetSource(std::unique_ptr<EtcdClient> client, state::ConfigManager* manager, Options options,
              HealthFn health);
  ~FleetSource() { Stop(); }
  FleetSource(const FleetSource&) = delete;
  FleetSource& operator=(const FleetSource&) = delete;

  // The watcher and the node publisher threads.
  void Start();
  // Ends both; the node key's lease is revoked (the node leaves fleet status at once).
  void Stop();

  // An Admin API mutation: read <prefix>config, compare its revision with
  // `expected_revision` (0: none), edit this node's view of it, validate, write it back in
  // a transaction compared on the revision read (no lost update), then apply it here.
  // Unconditional edits (expected 0) that lose a race are re-read and retried.
  state::OpStatus Mutate(uint64_t expected_revision, const state::ConfigManager::EditFn& edit,
                         controlplane::ConfigStore::Snapshot* out, int64_t* revision);

  void FillStatus(zproxy::v1::FleetStatus* out) const;
  state::OpStatus Nodes(zproxy::v1::FleetStatusResponse* out);
  // zproxy_config_etcd_revision and friends, appended to /metrics by zproxyd.
  std::string PrometheusText() const;

 private:
  void WatchLoop();
  void PublishLoop();
  // Applies the fleet config in `kv` (a PUT at kv.mod_revision()), or refuses it (invalid,
  // or the data plane rejected it). false: not applied for a passing reason (the data plane
  // unreachable...): the caller reads the key again later.
  bool Apply(const mvccpb::KeyValue& kv, bool follow_store);
  void Refuse(int64_t revision, const std::string& why);
  void SetConnected(bool connected, const std::string& error);
  // Waits up to `ms` unless stopping; returns false when stopping.
  bool Sleep(int64_t ms);
  // The same, but also returns (true) when Apply or Refuse asks for a publish.
  bool SleepUnlessPublish(int64_t ms);
  std::string NodeValue();

  const std::unique_ptr<EtcdClient> client_;
  state::ConfigManager* const manager_;
  const Options options_;
  const HealthFn health_;
  const std::string config_key_;

  std::mutex write_mu_;  // one Admin API write at a time from this node

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool publish_now_ = false;
  bool connected_ = false;
  bool ever_connected_ = false;
  std::string last_error_;
  int64_t refused_revision_ = 0;
  std::string refused_error_;
  EtcdClient::Watch* watch_ = nullptr;  // the open watch, cancelled by Stop
  std::thread watcher_;
  std::thread publisher_;
};

}  // namespace zproxy::fleet
