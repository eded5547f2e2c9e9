// Keep-alive pooling for clusters of type original_destination (docs/sidecar.md): which
// slot of the cluster's ConnectionPool (its "endpoint" index) holds connections to which
// destination, per worker. Such a cluster has no endpoints; each request must go to its
// own client's original destination, so a pooled connection may only be handed to a
// request for the address it was opened to.
//
// The guarantee rests on one invariant: a slot's address changes only while no connection
// of the slot exists (live == 0: none connecting, busy, idle or still closing). The worker
// counts a connection from its open (Opened, with the slot as its endpoint) until its slot
// is freed (Closed); a request for `dst` only acquires from the slot Claim returned for
// `dst`. So every connection a slot's pool list can hand out was opened to that slot's
// current address.
//
// A fixed table (capacity a power of two), sized once: open addressing from the address's
// hash. An entry is never emptied, only reassigned, so a lookup can stop at the first
// never-used entry; when the table holds `capacity` destinations with live connections, a
// new destination gets kUnpooled (connections that are closed after their request, as
// before pooling existed). No allocation after Init.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/sidecar/original_dst.h"

namespace zproxy::dataplane::sidecar {

class DestinationSlots {
 public:
  static constexpr uint32_t kDefaultCapacity = 256;

  // capacity: a power of two. The pool needs pool_slots() endpoints (the last: unpooled).
  void Init(uint32_t capacity = kDefaultCapacity) {
    entries_.assign(capacity, Entry{});
    mask_ = capacity - 1;
  }
  uint32_t capacity() const { return static_cast<uint32_t>(entries_.size()); }
  uint32_t pool_slots() const { return capacity() + 1; }
  // The slot of connections that found no slot of their own: never kept for reuse.
  uint32_t unpooled() const { return capacity(); }
  bool Pooled(uint32_t slot) const { return slot < capacity(); }

  // The slot for `dst`: the one already holding it, else one whose connections are all
  // gone (reassigned to dst), else unpooled().
  uint32_t Claim(const SockAddr& dst) {
    const uint32_t start = Hash(dst) & mask_;
    uint32_t free = unpooled();
    for (uint32_t i = 0; i < capacity(); i++) {
      const uint32_t slot = (start + i) & mask_;
      Entry& e = entries_[slot];
      if (!e.used) {  // dst is not further on: entries are never emptied
        if (free == unpooled()) free = slot;
        break;
      }
      if (Same(e.addr, dst)) return slot;
      if (e.live == 0 && free == unpooled()) free = slot;
    }
    if (free != unpooled()) {
      Entry& e = entries_[free];
      e.used = true;
      e.addr = dst;
    }
    return free;
  }

  // A connection of `slot` was opened / its slot freed (the unpooled slot is not counted).
  void Opened(uint32_t slot) {
    if (Pooled(slot)) entries_[slot].live++;
  }
  // Not clamped at 0: an unmatched Closed would wrap to a huge count, which keeps the slot
  // from ever being reassigned (the safe way to fail), where 0 would free it too early.
  void Closed(uint32_t slot) {
    if (Pooled(slot)) entries_[slot].live--;
  }
  uint32_t live(uint32_t slot) const { return Pooled(slot) ? entries_[slot].live : 0; }

  // Family, port, address and IPv6 scope: what the connect would be made with.
  static bool Same(const SockAddr& a, const SockAddr& b) {
    if (a.sa.sa_family != b.sa.sa_family) return false;
    if (a.sa.sa_family == AF_INET) {
      return a.v4.sin_port == b.v4.sin_port && a.v4.sin_addr.s_addr == b.v4.sin_addr.s_addr;
    }
    return a.sa.sa_family == AF_INET6 && a.v6.sin6_port == b.v6.sin6_port &&
           a.v6.sin6_scope_id == b.v6.sin6_scope_id &&
           memcmp(&a.v6.sin6_addr, &b.v6.sin6_addr, sizeof(in6_addr)) == 0;
  }

 private:
  struct Entry {
    SockAddr addr{};
    uint32_t live = 0;  // connections of this slot not yet freed
    bool used = false;  // ever assigned
  };

  static uint32_t Hash(const SockAddr& a) {
    uint32_t x = 0;
    auto mix = [&x](uint32_t w) { x = (x ^ w) * 0x9e3779b1u; };
    if (a.sa.sa_family == AF_INET) {
      mix(a.v4.sin_addr.s_addr);
      mix(a.v4.sin_port);
    } else {
      uint32_t w[4];
      memcpy(w, &a.v6.sin6_addr, sizeof(w));
      for (uint32_t v : w) mix(v);
      mix(a.v6.sin6_port);
      mix(a.v6.sin6_scope_id);
    }
    return x ^ (x >> 16);
  }

  std::vector<Entry> entries_;
  uint32_t mask_ = 0;
};

}  // namespace zproxy::dataplane::sidecar
