#include "dataplane/sidecar/destination_slots.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <random>
#include <utility>
#include <vector>

namespace zproxy::dataplane::sidecar {
namespace {

SockAddr V4(const char* ip, uint16_t port) {
  SockAddr a{};
  a.v4.sin_family = AF_INET;
  a.v4.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.v4.sin_addr);
  return a;
}

SockAddr V6(const char* ip, uint16_t port, uint32_t scope = 0) {
  SockAddr a{};
  a.v6.sin6_family = AF_INET6;
  a.v6.sin6_port = htons(port);
  a.v6.sin6_scope_id = scope;
  inet_pton(AF_INET6, ip, &a.v6.sin6_addr);
  return a;
}

TEST(DestinationSlots, OneSlotPerDestination) {
  DestinationSlots s;
  s.Init(8);
  // Each with a connection (a slot without one may be given to the next destination).
  auto open = [&s](const SockAddr& dst) {
    uint32_t slot = s.Claim(dst);
    s.Opened(slot);
    return slot;
  };
  uint32_t a = open(V4("127.0.0.2", 8000));
  uint32_t b = open(V4("127.0.0.3", 8000));
  uint32_t c = open(V4("127.0.0.2", 8001));
  uint32_t d = open(V6("::1", 8000));
  uint32_t e = open(V6("fe80::1", 8000, 2));
  uint32_t f = open(V6("fe80::1", 8000, 3));  // another interface: another destination
  std::vector<uint32_t> all{a, b, c, d, e, f};
  for (size_t i = 0; i < all.size(); i++) {
    EXPECT_TRUE(s.Pooled(all[i]));
    for (size_t j = i + 1; j < all.size(); j++) EXPECT_NE(all[i], all[j]) << i << " " << j;
  }
  EXPECT_EQ(s.Claim(V4("127.0.0.2", 8000)), a);
  EXPECT_EQ(s.Claim(V6("fe80::1", 8000, 3)), f);
  EXPECT_EQ(s.pool_slots(), 9u);
  EXPECT_EQ(s.unpooled(), 8u);
}

TEST(DestinationSlots, SlotWithConnectionsIsNeverReassigned) {
  DestinationSlots s;
  s.Init(2);
  uint32_t a = s.Claim(V4("10.0.0.1", 80));
  s.Opened(a);
  uint32_t b = s.Claim(V4("10.0.0.2", 80));
  s.Opened(b);
  // Both slots hold destinations with a connection: a third one is not pooled.
  EXPECT_EQ(s.Claim(V4("10.0.0.3", 80)), s.unpooled());
  s.Opened(s.unpooled());  // not counted
  s.Closed(s.unpooled());
  EXPECT_EQ(s.live(a), 1u);
  // Its last connection gone, a's slot goes to the next destination that needs one.
  s.Closed(a);
  EXPECT_EQ(s.Claim(V4("10.0.0.3", 80)), a);
  s.Opened(a);
  EXPECT_EQ(s.Claim(V4("10.0.0.1", 80)), s.unpooled());
  EXPECT_EQ(s.Claim(V4("10.0.0.2", 80)), b);
}

TEST(DestinationSlots, UnmatchedCloseNeverFreesASlot) {
  DestinationSlots s;
  s.Init(1);
  uint32_t a = s.Claim(V4("10.0.0.1", 80));
  s.Closed(a);  // a bug elsewhere: the slot stays its destination's
  EXPECT_EQ(s.Claim(V4("10.0.0.2", 80)), s.unpooled());
}

// A model of the worker: connections opened to the destination Claim gave a slot for,
// closed at random. After every Claim, each connection of the returned slot must have been
// opened to the claimed address (what makes handing one out safe), and a destination has
// at most one slot.
TEST(DestinationSlots, RandomOpsNeverMixDestinations) {
  for (uint32_t cap : {1u, 2u, 4u, 16u}) {
    DestinationSlots s;
    s.Init(cap);
    std::mt19937 rng(cap);
    std::vector<SockAddr> dsts;
    for (int i = 0; i < 24; i++) dsts.push_back(V4("10.1.0.1", static_cast<uint16_t>(1000 + i)));
    std::vector<std::pair<uint32_t, int>> conns;  // (slot, destination index)
    for (int step = 0; step < 20000; step++) {
      if (!conns.empty() && rng() % 2 == 0) {
        size_t k = rng() % conns.size();
        s.Closed(conns[k].first);
        conns[k] = conns.back();
        conns.pop_back();
        continue;
      }
      int d = static_cast<int>(rng() % dsts.size());
      uint32_t slot = s.Claim(dsts[d]);
      if (!s.Pooled(slot)) {
        ASSERT_EQ(slot, s.unpooled());
        // Unpooled only when every slot has live connections.
        for (uint32_t i = 0; i < cap; i++) ASSERT_GT(s.live(i), 0u);
      }
      uint32_t counted = 0;
      for (const auto& [cs, cd] : conns) {
        if (cs != slot || !s.Pooled(slot)) continue;
        ASSERT_EQ(cd, d) << "slot " << slot << " holds a connection to another destination";
        counted++;
      }
      if (s.Pooled(slot)) ASSERT_EQ(s.live(slot), counted);
      ASSERT_EQ(s.Claim(dsts[d]), slot);  // stable until something changes
      if (rng() % 4 != 0) {
        s.Opened(slot);
        conns.emplace_back(slot, d);
      }
    }
  }
}

}  // namespace
}  // namespace zproxy::dataplane::sidecar
