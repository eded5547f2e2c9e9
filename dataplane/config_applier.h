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

  // `workers` must outlive the applier. `current` is the snapshot the workers were
  // started with, reading `health_region` (may be null) through `health_slots`.
  // `ticket_keys` (may be null; must outlive the applier) keeps TLS session ticket keys
  // across snapshots.
  ConfigApplier(std::vector<Worker*> workers, std::shared_ptr<const Snapshot> current,
                std::shared_ptr<const HealthRegion> health_region,
                HealthSlotTable health_slots = {}, tls::TicketKeyStore* ticket_keys = nullptr);

  // Thread-safe (serialized). Blocks until every worker runs on the new snapshot, or
  // up to `timeout_ms` (then NACK; workers that did apply keep the new one). The version
  // must be newer than the running one, unless the snapshot is a resync (zproxyd's current
  // config for a data plane that reported another version, e.g. after adoption).
  Result Apply(const zproxy::v1::ConfigSnapshot& snapshot, uint32_t timeout_ms = 2000);

  // Re-attaches health (adoption by a new zproxyd): the running config, same version, now
  // reading `region` through `slots`. The previous region stays mapped for as long as a
  // snapshot (or an in-flight request) still points into it.
  Result RebindHealth(std::shared_ptr<const HealthRegion> region, HealthSlotTable slots,
                      uint32_t timeout_ms = 2000);

  // The slots the running snapshot reads and what they say now (for zproxyd's Hello).
  struct SlotState {
    std::string cluster;
    std::string address;
    uint32_t slot = 0;
    bool healthy = true;
  };
  std::vector<SlotState> HealthStates() const;

  std::shared_ptr<const Snapshot> current() const;
  uint64_t version() const { return version_.load(); }

 private:
  // Hands `next` to every worker and waits until all serve it (mu_ held).
  bool PostAndWait(const std::shared_ptr<Snapshot>& next, uint64_t deadline_us, std::string* error);

  std::vector<Worker*> workers_;
  tls::TicketKeyStore* ticket_keys_;
  mutable std::mutex mu_;
  std::shared_ptr<const HealthRegion> health_region_;  // under mu_
  HealthSlotTable health_slots_;                       // under mu_: what current_ reads
  std::shared_ptr<const Snapshot> current_;
  uint64_t generation_ = 0;  // of current_
  std::atomic<uint64_t> version_{0};
};

}  // namespace zproxy::dataplane
