// Applies config snapshots to the running workers without restarting anything.
//
// Apply() builds the runtime snapshot (validation, address resolution, route table),
// hands it to every worker through its mailbox, and waits until each worker serves new
// requests from it. In-flight requests finish on the snapshot they started with: workers
// keep per-cluster state (keep-alive pools, balancer, outlier state) of clusters whose
// definition did not change, and retire the rest once their last request ends.
//
// What cannot change in place (NACK with needs_restart, zproxyd then does a graceful
// data plane handover instead): the set of listeners (names, addresses, kinds), worker
// count, io_uring settings, metrics address, access log.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/health_region.h"
#include "dataplane/snapshot.h"
#include "zproxy/v1/dataplane_sync.pb.h"

namespace zproxy::dataplane {

class Worker;

class ConfigApplier {
 public:
  struct Result {
    bool ok = false;
    bool needs_restart = false;
    std::string reason;  // NACK reason naming the field
    uint64_t apply_us = 0;
  };

  // `workers` and `health_region` must outlive the applier. `current` is the snapshot
  // the workers were started with.
  ConfigApplier(std::vector<Worker*> workers, std::shared_ptr<const Snapshot> current,
                std::shared_ptr<const HealthRegion> health_region);

  // Thread-safe (serialized). Blocks until every worker runs on the new snapshot, or
  // up to `timeout_ms` (then NACK; workers that did apply keep the new one).
  Result Apply(const zproxy::v1::ConfigSnapshot& snapshot, uint32_t timeout_ms = 2000);

  std::shared_ptr<const Snapshot> current() const;
  uint64_t version() const { return version_.load(); }

 private:
  std::vector<Worker*> workers_;
  std::shared_ptr<const HealthRegion> health_region_;  // under mu_
  mutable std::mutex mu_;
  std::shared_ptr<const Snapshot> current_;
  std::atomic<uint64_t> version_{0};
};

}  // namespace zproxy::dataplane
