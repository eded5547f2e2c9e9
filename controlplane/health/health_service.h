// zproxyd's health subsystem in one object: owns the health region (the pinned BPF map, or
// a memfd when BPF cannot load), the slot assignment and the checker, turns each published
// config into check targets, and adds the region and the slot table to the data plane's
// bootstrap. The Admin API's WatchHealth subscribes to events(); States() gives the current
// picture for a watcher's first message.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/health_region.h"
#include "controlplane/health/checker.h"
#include "controlplane/health/health_events.h"
#include "zproxy/v1/config.pb.h"
#include "zproxy/v1/dataplane.pb.h"

namespace zproxy::health {

// The pinned BPF health map as seen from here (controlplane/bpf/health_map implements it;
// this folder stays free of libbpf).
struct BpfHealthStore {
  int map_fd = -1;    // mapped read-write by the checker
  UniqueFd share_fd;  // handed to data planes (read-only)
  // zproxy_health_names upkeep: a slot was assigned / freed / every name is stale.
  std::function<void(uint32_t slot, const std::string& cluster, const std::string& address)>
      name_slot;
  std::function<void(uint32_t slot)> clear_slot;
  std::function<void()> clear_all;
};

class HealthService {
 public:
  explicit HealthService(uint32_t slots = HealthRegion::kDefaultSlots);
  ~HealthService();

  // Maps the BPF map (`bpf` non-null) or creates the memfd region, and starts the checker
  // thread (with no targets yet).
  bool Start(std::string* error, BpfHealthStore* bpf = nullptr);
  void Stop();

  // Before the first Apply: every slot healthy (a reused BPF map may hold a dead zproxyd's
  // verdicts), except the slots an adopted data plane reads, which keep their endpoint and
  // verdict; the checker starts those endpoints from the inherited verdict, so a backend
  // that was down stays out of rotation across the zproxyd restart.
  struct InheritedSlot {
    std::string cluster;
    std::string address;
    uint32_t slot = 0;
    bool healthy = true;
  };
  void Reset(const std::vector<InheritedSlot>& inherited);

  // Reconfigures for a newly published config: endpoints of clusters with a health_check
  // are checked; unchanged endpoints keep their slot and state. Thread-safe. May block on
  // DNS for endpoint names (like the data plane's snapshot builder).
  void Apply(const zproxy::v1::Config& config);

  // Adds `health_slots` for `config` and the region fd (appended to `fds`, its index in
  // `health_region_fd_index`). Thread-safe.
  void FillBootstrap(const zproxy::v1::Config& config, zproxy::v1::DataplaneBootstrap* bootstrap,
                     std::vector<int>* fds);

  HealthEvents& events() { return events_; }
  std::vector<EndpointHealth> States() const { return checker_->States(); }
  const HealthRegion& region() const { return region_; }

 private:
  // Slot for the key (assigning one: its byte reset to healthy, its name recorded), under mu_.
  std::optional<uint32_t> AssignLocked(const std::string& cluster, const std::string& address,
                                       bool* fresh);

  const uint32_t slots_;
  HealthRegion region_;
  BpfHealthStore bpf_;  // map_fd < 0: memfd backing
  HealthEvents events_;
  std::unique_ptr<HealthChecker> checker_;
  std::mutex mu_;  // guards allocator_ (and region_ writes of fresh slots)
  HealthSlotAllocator allocator_;
  bool full_warned_ = false;
};

}  // namespace zproxy::health
