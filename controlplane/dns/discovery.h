// zproxyd's DNS discovery of host-name endpoints: a thread that looks up every name the
// published config uses (c-ares), again when its TTL runs out (clamped), and after a
// failure; when a name's address set changes it calls `changed` (on its own notifier
// thread, retried each second until it returns true), which pushes the new data plane
// view. The data plane never resolves these names: it gets addresses (Expand).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "controlplane/dns/ares_lookup.h"
#include "controlplane/dns/name_table.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::dns {

class Discovery {
 public:
  using CurrentConfigFn = std::function<std::shared_ptr<const zproxy::v1::Config>()>;
  using ChangedFn = std::function<bool()>;

  // Resolvers and the lookup timeout come from `config.dns` (a zproxyd restart changes
  // them). nullptr with *error when c-ares cannot start.
  static std::unique_ptr<Discovery> Start(const zproxy::v1::Config& config, CurrentConfigFn current,
                                          std::string* error);
  ~Discovery();
  void Stop();

  // From now on address changes call `changed` (set once, before names change matter).
  void OnChange(ChangedFn changed);

  // The names of `config` that were never looked up are looked up now; returns when each
  // has a first outcome or its lookup timed out. Used before a config's data plane view
  // is built (start-up, Admin API changes), so a new name serves at once.
  void EnsureLookedUp(const zproxy::v1::Config& config);

  // The data plane's view (expand.h) of `config`, with the addresses known now.
  void Expand(zproxy::v1::Config* view) const;
  bool HasNames() const;

  struct NameInfo {
    std::string cluster;
    std::string host;
    std::vector<std::string> ips;
    std::string state;  // NameTable::Describe
  };
  std::vector<NameInfo> Names() const;

  // zproxy_upstream_dns_* lines for /metrics.
  std::string PrometheusText() const;

 private:
  Discovery() = default;
  void Loop();
  void NotifyLoop();
  void OnLookupDone(const NameKey& key, const LookupOutcome& outcome);
  void Wake();
  int64_t NowMs() const;

  CurrentConfigFn current_;
  std::unique_ptr<AresLookup> lookup_;
  UniqueFd wake_fd_;
  mutable std::mutex mu_;
  std::condition_variable outcome_cv_;  // a lookup finished (EnsureLookedUp waits)
  NameTable table_;
  const zproxy::v1::Config* tracked_config_ = nullptr;  // the published config last pruned to
  std::shared_ptr<const zproxy::v1::Config> tracked_hold_;
  uint32_t timeout_ms_ = 0;
  ChangedFn changed_;
  bool dirty_ = false;  // addresses changed, `changed` not yet called successfully
  std::condition_variable notify_cv_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::thread notifier_;
};

}  // namespace zproxy::dns
