#include "controlplane/bpf/health_map.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "common/health_region.h"
#include "controlplane/bpf/bpffs.h"

namespace zproxy::controlplane::bpf {

// The BPF value must be the memfd region byte for byte (common/health_region.h).
static_assert(sizeof(zproxy_health_header) == sizeof(HealthRegionHeader));
static_assert(offsetof(zproxy_health_header, generation) ==
              offsetof(HealthRegionHeader, generation));
static_assert(ZPROXY_HEALTH_MAGIC == HealthRegionHeader::kMagic);
static_assert(ZPROXY_HEALTH_VERSION == HealthRegionHeader::kVersion);
static_assert(ZPROXY_HEALTH_SLOTS == HealthRegion::kDefaultSlots);
static_assert(offsetof(zproxy_health_region, health) == sizeof(HealthRegionHeader));

size_t HealthMapMmapSize() {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (sizeof(zproxy_health_region) + page - 1) / page * page;
}

zproxy_health_region* MapHealthRegion(int map_fd, bool writable) {
  void* p = mmap(nullptr, HealthMapMmapSize(), writable ? PROT_READ | PROT_WRITE : PROT_READ,
                 MAP_SHARED, map_fd, 0);
  return p == MAP_FAILED ? nullptr : static_cast<zproxy_health_region*>(p);
}

bool HealthMap::Load(const BpfOptions& options, std::string* error) {
  if (!options.pin_dir.empty() && !EnsureBpffsDir(options.pin_dir, error)) return false;
  if (!skel_.OpenAndLoad(options.pin_dir, options.keep_pins, "health", error)) return false;
  if (!reused()) {
    zproxy_health_region* r = MapHealthRegion(fd(), true);
    if (r == nullptr) {
      *error = std::string("mmap zproxy_health: ") + std::strerror(errno);
      skel_.Reset();
      return false;
    }
    r->header.magic = ZPROXY_HEALTH_MAGIC;
    r->header.version = ZPROXY_HEALTH_VERSION;
    r->header.slot_count = ZPROXY_HEALTH_SLOTS;
    r->header.slots_offset = sizeof(zproxy_health_header);
    r->header.generation = 0;
    std::memset(r->health, 1, sizeof(r->health));  // endpoints start healthy
    munmap(r, HealthMapMmapSize());
  }
  return skel_.CommitPins(error);
}

}  // namespace zproxy::controlplane::bpf
