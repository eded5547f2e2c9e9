// Listener.max_connections: open client connections per listener over all workers, one
// atomic counter per listener shared by the worker threads.
//
// Connections outlive config snapshots, so the counters belong to the process: each
// snapshot carries over the previous one's object (the set of listeners never changes in
// place: config_applier.h), and only the limit itself comes from the snapshot in use.
//
// Over the limit, a freshly accepted connection is closed at once and counted, as Envoy's
// per-listener connection limit does. HAProxy's maxconn instead stops accepting and leaves
// connections in the kernel's backlog; that would need every worker to stop and re-arm its
// multishot accept on each change of the count, and it leaves clients hanging in a queue
// they cannot see (up to their connect timeout) where a closed connection fails fast and
// lets a load balancer in front retry elsewhere. Each data plane counts its own
// connections: during a handover (old and new data plane both serving for a moment) a
// listener may briefly hold up to twice its limit.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace zproxy::ratelimit {

class ListenerConnections {
 public:
  explicit ListenerConnections(size_t listeners)
      : n_(listeners), slots_(std::make_unique<Slot[]>(listeners)) {}

  size_t size() const { return n_; }

  // A new client connection of `listener`: counted and true, or (limit != 0 and already
  // `limit` open) refused, counted as refused, false. Exact: a compare-and-swap loop.
  bool TryOpen(size_t listener, uint32_t limit) {
    Slot& s = slots_[listener];
    if (limit == 0) {
      s.open.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    int64_t open = s.open.load(std::memory_order_relaxed);
    do {
      if (open >= static_cast<int64_t>(limit)) {
        s.refused.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
    } while (!s.open.compare_exchange_weak(open, open + 1, std::memory_order_relaxed));
    return true;
  }
  // A connection TryOpen let in has closed (exactly once per connection).
  void Close(size_t listener) { slots_[listener].open.fetch_sub(1, std::memory_order_relaxed); }

  int64_t open(size_t listener) const {
    return slots_[listener].open.load(std::memory_order_relaxed);
  }
  uint64_t refused(size_t listener) const {
    return slots_[listener].refused.load(std::memory_order_relaxed);
  }

 private:
  struct alignas(64) Slot {
    std::atomic<int64_t> open{0};
    std::atomic<uint64_t> refused{0};
  };
  size_t n_;
  std::unique_ptr<Slot[]> slots_;
};

}  // namespace zproxy::ratelimit
