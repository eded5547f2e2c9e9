// The shared upstream health region: one byte per endpoint slot (1 = healthy, 0 =
// unhealthy), written by zproxyd's health checker and read by the data plane's workers with
// a plain (relaxed atomic) load on the hot path, through EndpointSet::SetHealthByte.
//
// Two backings with one layout, so nothing above this class cares which one is in use:
//   - the pinned, mmapable BPF array `zproxy_health` (bpf/health.bpf.c, loaded by
//     controlplane/bpf/health_map): one entry whose value is exactly this layout, so
//     `bpftool map dump pinned <bpffs_path>/zproxy_health` shows the fields through BTF,
//     and a restarted zproxyd finds the same map (and the data plane's mapping of it) again;
//   - a sealed memfd, the fallback when BPF cannot load (no CAP_BPF, no bpffs).
// zproxyd hands the fd to the data plane with the bootstrap (and its kind); the data plane
// maps it read-only.
//
// Layout (host byte order, both ends are the same machine):
//   offset 0   HealthRegionHeader (64 bytes, one cache line)
//   offset 64  uint8_t health[slot_count]   1 = healthy, 0 = unhealthy
// Unassigned slots hold 1, so a reader that resolves a slot before the checker's first
// verdict sees "healthy" (endpoints start healthy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/unique_fd.h"

namespace zproxy {

struct HealthRegionHeader {
  static constexpr uint32_t kMagic = 0x5248505a;  // "ZPHR" in memory (little endian)
  static constexpr uint32_t kVersion = 1;

  uint32_t magic;
  uint32_t version;
  uint32_t slot_count;
  uint32_t slots_offset;  // == sizeof(HealthRegionHeader); lets a later version grow it
  // Incremented (relaxed) on every Set() that changes a byte: a cheap "anything changed?"
  // for metrics or tools, never needed on the hot path.
  uint64_t generation;
  uint8_t reserved[40];
};
static_assert(sizeof(HealthRegionHeader) == 64);

enum class HealthBacking { kMemfd, kBpfMap };

class HealthRegion {
 public:
  // Default capacity: 4096 endpoints in 4 KiB + one header line. The region cannot grow
  // once the data plane has mapped it (a BPF array cannot either), so it is sized once.
  static constexpr uint32_t kDefaultSlots = 4096;

  HealthRegion() = default;
  HealthRegion(HealthRegion&&) noexcept;
  HealthRegion& operator=(HealthRegion&&) noexcept;
  HealthRegion(const HealthRegion&) = delete;
  HealthRegion& operator=(const HealthRegion&) = delete;
  ~HealthRegion();

  // Writer (zproxyd): creates the memfd, maps it read-write, fills every slot with 1 and
  // seals it (no shrink, no grow, no new writable mapping), so the fd can be handed to the
  // unprivileged data plane, which can then only map it read-only.
  static bool Create(uint32_t slot_count, HealthRegion* out, std::string* error);

  // Reader (data plane): maps the memfd `fd` read-only and checks the header. Takes no
  // ownership of `fd` (the mapping stays valid after it is closed).
  static bool MapReadOnly(int fd, HealthRegion* out, std::string* error);

  // Maps the BPF health map `map_fd` (its value already holds the header: the loader
  // writes it) read-only, or read-write for zproxyd's checker. Takes no ownership of the fd.
  static bool MapBpfMap(int map_fd, bool writable, HealthRegion* out, std::string* error);

  // The data plane's entry point: either backing, read-only.
  static bool MapShared(int fd, HealthBacking backing, HealthRegion* out, std::string* error);

  // Bytes a BPF map holding the region maps (its value rounded up to pages).
  static size_t BpfMapMmapSize();

  bool valid() const { return base_ != nullptr; }
  bool writable() const { return writable_; }
  HealthBacking backing() const { return backing_; }
  uint32_t slot_count() const { return slot_count_; }
  // The memfd (writer only; -1 for a reader). Pass it to the data plane.
  int fd() const { return fd_.get(); }

  // Stable for the region's lifetime; nullptr when slot >= slot_count. The byte changes
  // under the reader's feet: read it with __atomic_load_n(p, __ATOMIC_RELAXED).
  const uint8_t* Byte(uint32_t slot) const;
  bool Healthy(uint32_t slot) const;  // slots out of range count as healthy
  uint64_t generation() const;

  // Writer only (aborts on a read-only region: a programming error, not a runtime one).
  void Set(uint32_t slot, bool healthy);

 private:
  HealthRegionHeader* header() const { return reinterpret_cast<HealthRegionHeader*>(base_); }
  void Reset();

  UniqueFd fd_;
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint32_t slot_count_ = 0;
  bool writable_ = false;
  HealthBacking backing_ = HealthBacking::kMemfd;
};

// Assigns region slots to endpoints by a stable key (cluster name, endpoint address as
// configured). A config change keeps the slots of unchanged endpoints; slots of removed
// endpoints are recycled oldest-freed first, so a slot an old snapshot may still read is
// reused as late as possible. Not thread-safe (the owner locks).
class HealthSlotAllocator {
 public:
  explicit HealthSlotAllocator(uint32_t capacity) : capacity_(capacity) {}

  // Slot for the key, assigning a free one if it has none. std::nullopt when full.
  // `fresh` (optional) is set when the slot was newly assigned (the owner resets its byte).
  std::optional<uint32_t> Assign(const std::string& cluster, const std::string& address,
                                 bool* fresh = nullptr);
  std::optional<uint32_t> Find(const std::string& cluster, const std::string& address) const;
  // Gives the key exactly `slot` (a new zproxyd keeping the slots an adopted data plane
  // reads). False if the slot is out of range or taken by another key.
  bool Claim(const std::string& cluster, const std::string& address, uint32_t slot);
  // Frees every slot whose key is not in `keep`; returns the freed slots.
  std::vector<uint32_t> Retain(const std::vector<std::pair<std::string, std::string>>& keep);
  size_t size() const { return slots_.size(); }

 private:
  using Key = std::pair<std::string, std::string>;
  uint32_t capacity_;
  uint32_t next_unused_ = 0;     // slots >= this were never assigned
  std::vector<uint32_t> freed_;  // FIFO: front = freed longest ago
  std::map<Key, uint32_t> slots_;
};

// Reader side of the slot table that zproxyd sends along (DataplaneBootstrap.health_slots):
// (cluster, address) -> slot. Built by the data plane; no proto dependency here.
class HealthSlotTable {
 public:
  void Add(std::string cluster, std::string address, uint32_t slot);
  std::optional<uint32_t> SlotFor(const std::string& cluster, const std::string& address) const;
  size_t size() const { return slots_.size(); }
  // (cluster, address) -> slot, in key order.
  const std::map<std::pair<std::string, std::string>, uint32_t>& entries() const { return slots_; }

 private:
  std::map<std::pair<std::string, std::string>, uint32_t> slots_;
};

}  // namespace zproxy
