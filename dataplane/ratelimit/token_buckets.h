// Local rate limits (Route.rate_limit): token buckets shared by every worker of the data
// plane. Workers are threads of one process, so a bucket is one 64-bit atomic word that
// all of them update with compare-and-swap: no lock, no allocation on the request path.
//
// A bucket of `burst` tokens refilled at `requests_per_second` is kept in the GCRA form
// (the generic cell rate algorithm of ATM networks, also used by redis-cell): instead of a
// token count and a refill time, the word holds the moment E at which the bucket would
// have been empty. At time `now` it holds min(burst, (now - E) / interval) tokens, where
// interval = 1 s / requests_per_second. Taking a token:
//     base = max(E, now - burst * interval)    // a bucket never holds more than burst
//     E'   = base + interval
//     E' <= now: allowed, E := E'   else: refused, a token comes at E' (E unchanged)
// This is exactly a token bucket (same admissions), in one word with no packing and a
// 1/16 ns resolution. Whatever order concurrent takers commit in, each allowed request
// moves E forward by one interval and never past its own `now`, so over any window of
// length t at most burst + t * requests_per_second requests are allowed.
//
// Keyed limits (key: client_address, header:<name>) keep one bucket per key in a fixed
// table of kKeyedSlots slots per route (KeyedBuckets below), as nginx's limit_req zone or
// HAProxy's stick tables do with their configured sizes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace zproxy::ratelimit {

// Time of the buckets: 1/16 ns ticks of CLOCK_MONOTONIC, counted from kEpochTicks at the
// process's first call (so `now - window` never wraps: windows are capped below it).
constexpr uint64_t kTicksPerSecond = 16'000'000'000ull;
constexpr uint64_t kEpochTicks = uint64_t{1} << 61;  // ~4.5 years of ticks
uint64_t NowTicks();

// Seconds for Retry-After: `ticks` rounded up, at least 1.
uint32_t RetryAfterSeconds(uint64_t ticks);

struct BucketParams {
  uint64_t interval = 1;  // ticks per token (1 s / requests_per_second)
  uint64_t window = 1;    // burst * interval: how far E may lag behind now (a full bucket)
  // requests_per_second > 0, burst >= 1 (both validated); capped so window < kEpochTicks.
  static BucketParams Of(double requests_per_second, double burst);
  bool operator==(const BucketParams&) const = default;
};

// One bucket word. 0 (a fresh or zeroed word) is a full bucket.
class Bucket {
 public:
  // 0: a token was taken (allowed). Otherwise refused: ticks until a token is there.
  static uint64_t TryTake(std::atomic<uint64_t>& word, const BucketParams& p, uint64_t now) {
    uint64_t e = word.load(std::memory_order_relaxed);
    for (;;) {
      uint64_t floor = now - p.window;  // now >= kEpochTicks > window: no wrap
      uint64_t next = (e > floor ? e : floor) + p.interval;
      if (next > now) return next - now;
      if (word.compare_exchange_weak(e, next, std::memory_order_relaxed,
                                     std::memory_order_relaxed)) {
        return 0;
      }
    }
  }
  // Full: a bucket in this state carries no information (it equals a fresh one).
  static bool Full(uint64_t e, const BucketParams& p, uint64_t now) { return e <= now - p.window; }
};

// Seeded 64-bit hash of a key (the seed is random per process, so which keys share slots
// cannot be precomputed by a client). Never returns 0 (0 marks a slot never used).
uint64_t KeyHash(std::string_view key);

// A fixed table of per-key buckets for one route. Each slot holds a key's 64-bit hash and
// its bucket word; slots come in groups of four (one cache line), and a key may live in
// any slot of two groups picked by its hash (eight candidate slots):
//  - found in one: its own bucket;
//  - else the first candidate whose bucket is full is taken over: a full bucket is the
//    same as a fresh one, so evicting it loses nothing (keys idle for burst/rate seconds
//    are forgotten without any sweeping);
//  - else all eight hold other keys that are still refilling: the key shares one of their
//    buckets (counted as a collision). Sharing is conservative: no key ever gets more
//    than its configured rate, but a key may be limited early because another key spent
//    tokens of the same bucket. With 16384 slots, 2000 keys active within burst/rate
//    seconds of each other practically never collide; beyond the table's size (say 20000
//    at once) keys increasingly share.
// A slot changing owner while its old owner takes a token concurrently can charge that
// token to the new owner (one token, conservative as well).
class KeyedBuckets {
 public:
  static constexpr size_t kSlots = 16384;  // 16 bytes each: 256 KiB, zero pages until used
  static constexpr size_t kWays = 4;       // slots per group (one cache line)
  static constexpr size_t kGroups = kSlots / kWays;

  KeyedBuckets();
  ~KeyedBuckets();
  KeyedBuckets(const KeyedBuckets&) = delete;
  KeyedBuckets& operator=(const KeyedBuckets&) = delete;

  // As Bucket::TryTake, for the key whose KeyHash is `hash`. *collided: the key shares a
  // bucket with another key (all its candidate slots were busy).
  uint64_t TryTake(uint64_t hash, const BucketParams& p, uint64_t now, bool* collided);

 private:
  struct Slot {
    std::atomic<uint64_t> key;
    std::atomic<uint64_t> e;
  };
  Slot* slots_;  // kSlots, mmap'ed (page aligned; pages stay zero pages until written)
};

}  // namespace zproxy::ratelimit
