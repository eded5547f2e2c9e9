#include "dataplane/ratelimit/token_buckets.h"

#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

namespace zproxy::ratelimit {
namespace {

uint64_t MonotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Windows and intervals stay far below the epoch offset, so `now - window` never wraps.
constexpr uint64_t kMaxTicks = kEpochTicks / 2;

uint64_t Clamp(double ticks) {
  if (!(ticks >= 1)) return 1;  // also NaN
  if (ticks >= static_cast<double>(kMaxTicks)) return kMaxTicks;
  return static_cast<uint64_t>(std::llround(ticks));
}

uint64_t Seed() {
  static const uint64_t seed = [] {
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), 0) != sizeof(s)) s = MonotonicNs();
    return s | 1;
  }();
  return seed;
}

inline uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t NowTicks() {
  static const uint64_t start_ns = MonotonicNs();
  return kEpochTicks + (MonotonicNs() - start_ns) * 16;
}

uint32_t RetryAfterSeconds(uint64_t ticks) {
  uint64_t s = (ticks + kTicksPerSecond - 1) / kTicksPerSecond;
  if (s < 1) s = 1;
  if (s > 0xffffffffull) s = 0xffffffffull;
  return static_cast<uint32_t>(s);
}

BucketParams BucketParams::Of(double requests_per_second, double burst) {
  BucketParams p;
  double interval = static_cast<double>(kTicksPerSecond) / requests_per_second;
  p.interval = Clamp(interval);
  p.window = Clamp(interval * (burst < 1 ? 1 : burst));
  if (p.window < p.interval) p.window = p.interval;
  return p;
}

uint64_t KeyHash(std::string_view key) {
  uint64_t h = Seed() ^ (key.size() * 0x9e3779b97f4a7c15ull);
  size_t i = 0;
  for (; i + 8 <= key.size(); i += 8) {
    uint64_t w;
    memcpy(&w, key.data() + i, 8);
    h = Mix(h ^ w) + 0x9e3779b97f4a7c15ull;
  }
  if (i < key.size()) {
    uint64_t w = 0;
    memcpy(&w, key.data() + i, key.size() - i);
    h = Mix(h ^ w ^ 0xff);
  }
  h = Mix(h);
  return h != 0 ? h : 1;
}

KeyedBuckets::KeyedBuckets() {
  // Anonymous memory reads as zeros (never-used slots holding full buckets) and costs
  // nothing until a slot is written, so a route's table grows with its active keys.
  static_assert(sizeof(Slot) * kWays == 64, "a group is one cache line");
  void* mem = mmap(nullptr, kSlots * sizeof(Slot), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::bad_alloc();
  slots_ = static_cast<Slot*>(mem);
}

KeyedBuckets::~KeyedBuckets() { munmap(slots_, kSlots * sizeof(Slot)); }

uint64_t KeyedBuckets::TryTake(uint64_t hash, const BucketParams& p, uint64_t now, bool* collided) {
  constexpr uint64_t kMask = kGroups - 1;
  Slot* groups[2] = {slots_ + (hash & kMask) * kWays, slots_ + ((hash >> 32) & kMask) * kWays};
  if (groups[1] == groups[0]) groups[1] = slots_ + (((hash & kMask) ^ 1) * kWays);
  *collided = false;
  for (Slot* g : groups) {
    for (size_t i = 0; i < kWays; i++) {
      if (g[i].key.load(std::memory_order_relaxed) == hash) {
        return Bucket::TryTake(g[i].e, p, now);
      }
    }
  }
  for (Slot* g : groups) {
    for (size_t i = 0; i < kWays; i++) {
      Slot& s = g[i];
      uint64_t owner = s.key.load(std::memory_order_relaxed);
      if (!Bucket::Full(s.e.load(std::memory_order_relaxed), p, now)) continue;
      if (s.key.compare_exchange_strong(owner, hash, std::memory_order_relaxed) || owner == hash) {
        return Bucket::TryTake(s.e, p, now);
      }
    }
  }
  // All eight hold keys still refilling: share one of them, picked by the key.
  *collided = true;
  return Bucket::TryTake(groups[0][(hash >> 24) % kWays].e, p, now);
}

}  // namespace zproxy::ratelimit
