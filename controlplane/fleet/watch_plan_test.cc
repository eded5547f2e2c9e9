#include "controlplane/fleet/watch_plan.h"

#include <gtest/gtest.h>

namespace zproxy::fleet {
namespace {

TEST(PlanAfterRead, NewerRevisionIsAppliedAndTheWatchStartsAfterTheRead) {
  ReadPlan p = PlanAfterRead(/*applied=*/5, /*found=*/true, /*mod=*/9, /*header=*/12);
  EXPECT_TRUE(p.apply);
  EXPECT_FALSE(p.store_went_back);
  EXPECT_EQ(p.watch_from, 13);  // nothing between the read and the watch is missed
}

TEST(PlanAfterRead, TheAppliedRevisionIsNotAppliedTwice) {
  ReadPlan p = PlanAfterRead(9, true, 9, 40);
  EXPECT_FALSE(p.apply);
  EXPECT_EQ(p.watch_from, 41);
}

TEST(PlanAfterRead, AStoreRestoredFromAnOlderSnapshotIsFollowed) {
  ReadPlan p = PlanAfterRead(30, true, 12, 14);
  EXPECT_TRUE(p.apply);
  EXPECT_TRUE(p.store_went_back);
  EXPECT_EQ(p.watch_from, 15);
}

TEST(PlanAfterRead, AMissingKeyKeepsTheAppliedConfigAndWatchesForIt) {
  ReadPlan p = PlanAfterRead(7, false, 0, 20);
  EXPECT_FALSE(p.apply);
  EXPECT_FALSE(p.store_went_back);
  EXPECT_EQ(p.watch_from, 21);
}

TEST(WatchNeedsReread, CompactionOrCancelEndsTheWatch) {
  EXPECT_TRUE(WatchNeedsReread(100, true));
  EXPECT_TRUE(WatchNeedsReread(100, false));
  EXPECT_TRUE(WatchNeedsReread(0, true));
  EXPECT_FALSE(WatchNeedsReread(0, false));
}

}  // namespace
}  // namespace zproxy::fleet
