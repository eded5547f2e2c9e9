#include "controlplane/bpf/health_map.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

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

namespace {

void CopyName(char (&dst)[ZPROXY_HEALTH_NAME_LEN], const std::string& src) {
  const size_t n = std::min(src.size(), sizeof(dst) - 1);
  std::memcpy(dst, src.data(), n);
  std::memset(dst + n, 0, sizeof(dst) - n);
}

}  // namespace

size_t HealthMapMmapSize() {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (sizeof(zproxy_health_region) + page - 1) / page * page;
}

zproxy_health_region* MapHealthRegion(int map_fd, bool writable) {
  void* p = mmap(nullptr, HealthMapMmapSize(), writable ? PROT_READ | PROT_WRITE : PROT_READ,
                 MAP_SHARED, map_fd, 0);
  return p == MAP_FAILED ? nullptr : static_cast<zproxy_health_region*>(p);
}

UniqueFd HealthMap::ShareFd() const { return UniqueFd(fcntl(fd(), F_DUPFD_CLOEXEC, 0)); }

bool HealthMap::SetSlotName(uint32_t slot, const std::string& cluster, const std::string& address) {
  zproxy_health_slot_name name;
  CopyName(name.cluster, cluster);
  CopyName(name.address, address);
  return bpf_map_update_elem(names_fd(), &slot, &name, BPF_ANY) == 0;
}

void HealthMap::ClearSlotName(uint32_t slot) { bpf_map_delete_elem(names_fd(), &slot); }

void HealthMap::ClearSlotNames() {
  const int names = names_fd();
  std::vector<uint32_t> keys;
  uint32_t key = 0;
  uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(names, prev, &key) == 0) {
    keys.push_back(key);
    prev = &keys.back();
  }
  for (uint32_t k : keys) bpf_map_delete_elem(names, &k);
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
