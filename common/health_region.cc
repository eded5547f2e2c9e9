#include "common/health_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

namespace zproxy {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

size_t RegionSize(uint32_t slots) { return sizeof(HealthRegionHeader) + slots; }

}  // namespace

HealthRegion::HealthRegion(HealthRegion&& o) noexcept { *this = std::move(o); }

HealthRegion& HealthRegion::operator=(HealthRegion&& o) noexcept {
  if (this != &o) {
    Reset();
    fd_ = std::move(o.fd_);
    base_ = std::exchange(o.base_, nullptr);
    size_ = std::exchange(o.size_, 0);
    slot_count_ = std::exchange(o.slot_count_, 0);
    writable_ = std::exchange(o.writable_, false);
    backing_ = o.backing_;
  }
  return *this;
}

HealthRegion::~HealthRegion() { Reset(); }

void HealthRegion::Reset() {
  if (base_ != nullptr) munmap(base_, size_);
  base_ = nullptr;
  size_ = 0;
  slot_count_ = 0;
  writable_ = false;
  fd_.reset();
}

bool HealthRegion::Create(uint32_t slot_count, HealthRegion* out, std::string* error) {
  if (slot_count == 0) {
    *error = "health region: slot count must be at least 1";
    return false;
  }
  UniqueFd fd(memfd_create("zproxy-health", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) {
    *error = Errno("health region: memfd_create");
    return false;
  }
  const size_t size = RegionSize(slot_count);
  if (ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    *error = Errno("health region: ftruncate");
    return false;
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) {
    *error = Errno("health region: mmap read-write");
    return false;
  }
  HealthRegion r;
  r.fd_ = std::move(fd);
  r.base_ = static_cast<uint8_t*>(p);
  r.size_ = size;
  r.slot_count_ = slot_count;
  r.writable_ = true;
  HealthRegionHeader* h = r.header();
  std::memset(h, 0, sizeof(*h));
  h->magic = HealthRegionHeader::kMagic;
  h->version = HealthRegionHeader::kVersion;
  h->slot_count = slot_count;
  h->slots_offset = sizeof(HealthRegionHeader);
  std::memset(r.base_ + sizeof(HealthRegionHeader), 1, slot_count);
  // Our own writable mapping exists already; FUTURE_WRITE refuses every later one, so a
  // compromised data plane cannot flip health bytes. No shrink/grow: a reader must never
  // fault on a truncated mapping.
  if (fcntl(r.fd_.get(), F_ADD_SEALS,
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) != 0) {
    *error = Errno("health region: seal memfd");
    return false;
  }
  *out = std::move(r);
  return true;
}

size_t HealthRegion::BpfMapMmapSize() {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return (RegionSize(kDefaultSlots) + page - 1) / page * page;
}

bool HealthRegion::MapShared(int fd, HealthBacking backing, HealthRegion* out, std::string* error) {
  return backing == HealthBacking::kBpfMap ? MapBpfMap(fd, /*writable=*/false, out, error)
                                           : MapReadOnly(fd, out, error);
}

bool HealthRegion::MapBpfMap(int map_fd, bool writable, HealthRegion* out, std::string* error) {
  const size_t size = BpfMapMmapSize();
  void* p =
      mmap(nullptr, size, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, map_fd, 0);
  if (p == MAP_FAILED) {
    *error = Errno(std::string("health map: mmap ") + (writable ? "read-write" : "read-only") +
                   " (fd " + std::to_string(map_fd) + ")");
    return false;
  }
  HealthRegion r;
  r.base_ = static_cast<uint8_t*>(p);
  r.size_ = size;
  r.backing_ = HealthBacking::kBpfMap;
  const HealthRegionHeader* h = r.header();
  if (h->magic != HealthRegionHeader::kMagic || h->version != HealthRegionHeader::kVersion ||
      h->slots_offset != sizeof(HealthRegionHeader) || RegionSize(h->slot_count) > size) {
    *error = "health map: bad header (magic " + std::to_string(h->magic) + ", version " +
             std::to_string(h->version) + ", " + std::to_string(h->slot_count) +
             " slots): not a zproxy health map, or zproxyd and the data plane disagree";
    return false;  // r's destructor unmaps
  }
  r.slot_count_ = h->slot_count;
  r.writable_ = writable;
  *out = std::move(r);
  return true;
}

bool HealthRegion::MapReadOnly(int fd, HealthRegion* out, std::string* error) {
  struct stat st;
  if (fstat(fd, &st) != 0) {
    *error = Errno("health region: fstat fd " + std::to_string(fd));
    return false;
  }
  if (static_cast<size_t>(st.st_size) < sizeof(HealthRegionHeader)) {
    *error = "health region: fd " + std::to_string(fd) + " is " + std::to_string(st.st_size) +
             " bytes, smaller than its header";
    return false;
  }
  const size_t size = static_cast<size_t>(st.st_size);
  void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    *error = Errno("health region: mmap read-only");
    return false;
  }
  HealthRegion r;
  r.base_ = static_cast<uint8_t*>(p);
  r.size_ = size;
  const HealthRegionHeader* h = r.header();
  if (h->magic != HealthRegionHeader::kMagic || h->version != HealthRegionHeader::kVersion) {
    *error = "health region: bad header (magic " + std::to_string(h->magic) + ", version " +
             std::to_string(h->version) + "): zproxyd and the data plane disagree";
    return false;  // r's destructor unmaps
  }
  if (h->slots_offset != sizeof(HealthRegionHeader) || RegionSize(h->slot_count) > size) {
    *error = "health region: header announces " + std::to_string(h->slot_count) +
             " slots at offset " + std::to_string(h->slots_offset) + " but the region is " +
             std::to_string(size) + " bytes";
    return false;
  }
  r.slot_count_ = h->slot_count;
  *out = std::move(r);
  return true;
}

const uint8_t* HealthRegion::Byte(uint32_t slot) const {
  if (base_ == nullptr || slot >= slot_count_) return nullptr;
  return base_ + sizeof(HealthRegionHeader) + slot;
}

bool HealthRegion::Healthy(uint32_t slot) const {
  const uint8_t* b = Byte(slot);
  return b == nullptr || __atomic_load_n(b, __ATOMIC_RELAXED) != 0;
}

uint64_t HealthRegion::generation() const {
  return base_ == nullptr ? 0 : __atomic_load_n(&header()->generation, __ATOMIC_RELAXED);
}

void HealthRegion::Set(uint32_t slot, bool healthy) {
  if (!writable_ || slot >= slot_count_) {
    std::fprintf(stderr, "HealthRegion::Set(%u) on a %s region of %u slots\n", slot,
                 writable_ ? "writable" : "read-only", slot_count_);
    std::abort();
  }
  uint8_t* b = base_ + sizeof(HealthRegionHeader) + slot;
  const uint8_t v = healthy ? 1 : 0;
  if (__atomic_exchange_n(b, v, __ATOMIC_RELAXED) != v) {
    __atomic_fetch_add(&header()->generation, 1, __ATOMIC_RELAXED);
  }
}

std::optional<uint32_t> HealthSlotAllocator::Assign(const std::string& cluster,
                                                    const std::string& address, bool* fresh) {
  if (fresh != nullptr) *fresh = false;
  Key key{cluster, address};
  auto it = slots_.find(key);
  if (it != slots_.end()) return it->second;
  uint32_t slot;
  if (next_unused_ < capacity_) {
    slot = next_unused_++;
  } else if (!freed_.empty()) {
    slot = freed_.front();
    freed_.erase(freed_.begin());
  } else {
    return std::nullopt;
  }
  slots_.emplace(std::move(key), slot);
  if (fresh != nullptr) *fresh = true;
  return slot;
}

bool HealthSlotAllocator::Claim(const std::string& cluster, const std::string& address,
                                uint32_t slot) {
  if (slot >= capacity_) return false;
  Key key{cluster, address};
  auto it = slots_.find(key);
  if (it != slots_.end()) return it->second == slot;
  if (slot >= next_unused_) {
    // Slots skipped over become free, oldest first.
    for (uint32_t s = next_unused_; s < slot; s++) freed_.push_back(s);
    next_unused_ = slot + 1;
  } else {
    auto f = std::find(freed_.begin(), freed_.end(), slot);
    if (f == freed_.end()) return false;  // another key holds it
    freed_.erase(f);
  }
  slots_.emplace(std::move(key), slot);
  return true;
}

std::optional<uint32_t> HealthSlotAllocator::Find(const std::string& cluster,
                                                  const std::string& address) const {
  auto it = slots_.find(Key{cluster, address});
  if (it == slots_.end()) return std::nullopt;
  return it->second;
}

std::vector<uint32_t> HealthSlotAllocator::Retain(const std::vector<Key>& keep) {
  std::set<Key> wanted(keep.begin(), keep.end());
  std::vector<uint32_t> freed;
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (wanted.count(it->first) == 0) {
      freed.push_back(it->second);
      freed_.push_back(it->second);
      it = slots_.erase(it);
    } else {
      ++it;
    }
  }
  return freed;
}

void HealthSlotTable::Add(std::string cluster, std::string address, uint32_t slot) {
  slots_[{std::move(cluster), std::move(address)}] = slot;
}

std::optional<uint32_t> HealthSlotTable::SlotFor(const std::string& cluster,
                                                 const std::string& address) const {
  auto it = slots_.find({cluster, address});
  if (it == slots_.end()) return std::nullopt;
  return it->second;
}

}  // namespace zproxy
