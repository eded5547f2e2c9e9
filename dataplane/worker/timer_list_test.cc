#include "dataplane/worker/timer_list.h"

#include <gtest/gtest.h>

#include <vector>

namespace zproxy::dataplane {
namespace {

struct Obj {
  TimerLink link;
};

struct LinkOf {
  std::vector<Obj>* objs;
  TimerLink& operator()(uint32_t i) const { return (*objs)[i].link; }
};

TEST(TimerLists, ExpiresInDeadlineOrderPerList) {
  std::vector<Obj> objs(10);
  TimerLists<LinkOf> t(LinkOf{&objs});
  uint16_t fast = t.AddList(100);
  uint16_t slow = t.AddList(1000);
  t.Arm(fast, 0, 10);  // deadline 110
  t.Arm(slow, 1, 10);  // deadline 1010
  t.Arm(fast, 2, 50);  // deadline 150
  std::vector<uint32_t> fired;
  t.Expire(120, [&](uint32_t idx, uint16_t list) {
    EXPECT_EQ(list, fast);
    fired.push_back(idx);
  });
  EXPECT_EQ(fired, std::vector<uint32_t>({0}));
  fired.clear();
  t.Expire(2000, [&](uint32_t idx, uint16_t) { fired.push_back(idx); });
  EXPECT_EQ(fired, std::vector<uint32_t>({2, 1}));
}

TEST(TimerLists, ArmAtKeepsDeadlineOrder) {
  std::vector<Obj> objs(6);
  TimerLists<LinkOf> t(LinkOf{&objs});
  uint16_t l = t.AddList(100);
  t.Arm(l, 0, 10);     // 110
  t.Arm(l, 1, 40);     // 140
  t.Arm(l, 2, 60);     // 160
  t.ArmAt(l, 3, 150);  // between 1 and 2
  t.ArmAt(l, 4, 100);  // new head
  t.ArmAt(l, 5, 200);  // new tail
  std::vector<uint32_t> fired;
  t.Expire(155, [&](uint32_t idx, uint16_t) { fired.push_back(idx); });
  EXPECT_EQ(fired, std::vector<uint32_t>({4, 0, 1, 3}));
  fired.clear();
  t.Disarm(2);
  t.Expire(1000, [&](uint32_t idx, uint16_t) { fired.push_back(idx); });
  EXPECT_EQ(fired, std::vector<uint32_t>({5}));
}

TEST(TimerLists, RearmMovesAndDisarmRemoves) {
  std::vector<Obj> objs(4);
  TimerLists<LinkOf> t(LinkOf{&objs});
  uint16_t l = t.AddList(100);
  t.Arm(l, 0, 0);
  t.Arm(l, 1, 0);
  t.Arm(l, 0, 500);  // activity: pushed to the back with a later deadline
  t.Disarm(1);
  std::vector<uint32_t> fired;
  t.Expire(200, [&](uint32_t idx, uint16_t) { fired.push_back(idx); });
  EXPECT_TRUE(fired.empty());
  t.Expire(600, [&](uint32_t idx, uint16_t) { fired.push_back(idx); });
  EXPECT_EQ(fired, std::vector<uint32_t>({0}));
}

TEST(TimerLists, ZeroTimeoutMeansNever) {
  std::vector<Obj> objs(1);
  TimerLists<LinkOf> t(LinkOf{&objs});
  uint16_t l = t.AddList(0);
  t.Arm(l, 0, 0);
  int fired = 0;
  t.Expire(1u << 30, [&](uint32_t, uint16_t) { fired++; });
  EXPECT_EQ(fired, 0);
}

struct Item {
  int v = 0;
  void Reset() { v = 7; }
};

TEST(Slab, StableAddressesAndReuse) {
  Slab<Item, 4> s;
  uint32_t a = s.Alloc();
  Item* pa = &s.Get(a);
  std::vector<uint32_t> more;
  for (int i = 0; i < 20; i++) more.push_back(s.Alloc());
  EXPECT_EQ(pa, &s.Get(a));  // growth never moves objects
  EXPECT_EQ(s.live(), 21u);
  s.Get(a).v = 1;
  s.Free(a);
  uint32_t b = s.Alloc();
  EXPECT_EQ(b, a);
  EXPECT_EQ(s.Get(b).v, 7);  // Reset on allocation
}

}  // namespace
}  // namespace zproxy::dataplane
