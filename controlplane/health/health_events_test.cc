#include "controlplane/health/health_events.h"

#include <thread>

#include "gtest/gtest.h"

namespace zproxy::health {
namespace {

using std::chrono::milliseconds;

HealthEvent Ev(const std::string& address, bool healthy) {
  return HealthEvent{std::chrono::system_clock::now(), "app", address, healthy, "test"};
}

TEST(HealthEventsTest, EverySubscriberGetsEveryEvent) {
  HealthEvents events;
  auto a = events.Subscribe();
  auto b = events.Subscribe();
  EXPECT_EQ(events.subscribers(), 2u);
  events.Publish(Ev("x:1", false));
  HealthEvent got;
  ASSERT_TRUE(a->Next(&got, milliseconds(100)));
  EXPECT_EQ(got.address, "x:1");
  EXPECT_FALSE(got.healthy);
  ASSERT_TRUE(b->Next(&got, milliseconds(100)));
  EXPECT_EQ(got.address, "x:1");
  EXPECT_FALSE(a->Next(&got, milliseconds(10)));
}

TEST(HealthEventsTest, UnsubscribeStopsAndWakes) {
  HealthEvents events;
  auto a = events.Subscribe();
  std::thread t([&] {
    HealthEvent got;
    EXPECT_FALSE(a->Next(&got, milliseconds(10000)));  // woken by Unsubscribe
  });
  std::this_thread::sleep_for(milliseconds(20));
  events.Unsubscribe(a);
  t.join();
  EXPECT_TRUE(a->closed());
  EXPECT_EQ(events.subscribers(), 0u);
  events.Publish(Ev("x:1", true));
  HealthEvent got;
  EXPECT_FALSE(a->Next(&got, milliseconds(1)));
}

TEST(HealthEventsTest, DroppedSubscriberIsPruned) {
  HealthEvents events;
  { auto a = events.Subscribe(); }
  events.Publish(Ev("x:1", true));
  EXPECT_EQ(events.subscribers(), 0u);
}

TEST(HealthEventsTest, FullQueueDropsOldestAndCounts) {
  HealthEvents events;
  auto a = events.Subscribe(2);
  events.Publish(Ev("1:1", false));
  events.Publish(Ev("2:2", false));
  events.Publish(Ev("3:3", false));
  EXPECT_EQ(a->TakeDropped(), 1u);
  EXPECT_EQ(a->TakeDropped(), 0u);
  HealthEvent got;
  ASSERT_TRUE(a->Next(&got, milliseconds(1)));
  EXPECT_EQ(got.address, "2:2");
  ASSERT_TRUE(a->Next(&got, milliseconds(1)));
  EXPECT_EQ(got.address, "3:3");
}

}  // namespace
}  // namespace zproxy::health
