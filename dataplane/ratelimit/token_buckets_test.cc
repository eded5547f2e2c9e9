#include "dataplane/ratelimit/token_buckets.h"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "dataplane/ratelimit/connection_limits.h"
#include "dataplane/ratelimit/rate_limits.h"
#include "gtest/gtest.h"

namespace zproxy::ratelimit {
namespace {

constexpr uint64_t kSecond = kTicksPerSecond;
constexpr uint64_t kT0 = kEpochTicks + 1000 * kSecond;  // some time after the epoch

TEST(BucketParams, IntervalAndWindow) {
  BucketParams p = BucketParams::Of(10, 5);
  EXPECT_EQ(p.interval, kSecond / 10);
  EXPECT_EQ(p.window, kSecond / 2);
  // Fractional rates and bursts.
  p = BucketParams::Of(0.5, 1);
  EXPECT_EQ(p.interval, 2 * kSecond);
  EXPECT_EQ(p.window, 2 * kSecond);
  p = BucketParams::Of(3, 1.5);
  EXPECT_EQ(p.interval, kSecond / 3);
  EXPECT_EQ(p.window, kSecond / 2);
  // The highest rate validation allows still has a precise interval (1/16 ns ticks).
  p = BucketParams::Of(1e7, 1);
  EXPECT_EQ(p.interval, 1600u);
  // Absurd values are capped, never wrap.
  p = BucketParams::Of(1e-300, 1e7);
  EXPECT_LT(p.window, kEpochTicks);
  EXPECT_GE(p.window, p.interval);
}

TEST(Bucket, StartsFullAllowsBurstThenRefills) {
  std::atomic<uint64_t> word{0};
  BucketParams p = BucketParams::Of(10, 5);
  for (int i = 0; i < 5; i++) EXPECT_EQ(Bucket::TryTake(word, p, kT0), 0u) << i;
  // Empty: the next token comes one interval later.
  EXPECT_EQ(Bucket::TryTake(word, p, kT0), kSecond / 10);
  // A refusal takes nothing.
  EXPECT_EQ(Bucket::TryTake(word, p, kT0 + kSecond / 20), kSecond / 20);
  EXPECT_EQ(Bucket::TryTake(word, p, kT0 + kSecond / 10), 0u);
  EXPECT_NE(Bucket::TryTake(word, p, kT0 + kSecond / 10), 0u);
  // 0.35 s later: 3.5 tokens came, 3 can be taken.
  uint64_t t = kT0 + kSecond / 10 + kSecond * 35 / 100;
  for (int i = 0; i < 3; i++) EXPECT_EQ(Bucket::TryTake(word, p, t), 0u) << i;
  EXPECT_EQ(Bucket::TryTake(word, p, t), kSecond / 20);
  // Long idle: never more than the burst.
  t += 100 * kSecond;
  EXPECT_TRUE(Bucket::Full(word.load(), p, t));
  for (int i = 0; i < 5; i++) EXPECT_EQ(Bucket::TryTake(word, p, t), 0u) << i;
  EXPECT_NE(Bucket::TryTake(word, p, t), 0u);
  EXPECT_FALSE(Bucket::Full(word.load(), p, t));
}

TEST(Bucket, SustainedRateIsExact) {
  // One request every 1 ms for 10 s against 200/s, burst 10: 10 + 200 * 10 allowed.
  std::atomic<uint64_t> word{0};
  BucketParams p = BucketParams::Of(200, 10);
  int allowed = 0;
  for (int ms = 0; ms <= 10000; ms++) {
    if (Bucket::TryTake(word, p, kT0 + static_cast<uint64_t>(ms) * (kSecond / 1000)) == 0) {
      allowed++;
    }
  }
  EXPECT_EQ(allowed, 10 + 200 * 10);
}

TEST(RetryAfter, RoundsUpToWholeSecondsAtLeastOne) {
  EXPECT_EQ(RetryAfterSeconds(1), 1u);
  EXPECT_EQ(RetryAfterSeconds(kSecond / 200), 1u);
  EXPECT_EQ(RetryAfterSeconds(kSecond), 1u);
  EXPECT_EQ(RetryAfterSeconds(kSecond + 1), 2u);
  std::atomic<uint64_t> word{0};
  BucketParams p = BucketParams::Of(0.5, 1);  // one request per 2 s
  EXPECT_EQ(Bucket::TryTake(word, p, kT0), 0u);
  EXPECT_EQ(RetryAfterSeconds(Bucket::TryTake(word, p, kT0)), 2u);
  EXPECT_EQ(RetryAfterSeconds(Bucket::TryTake(word, p, kT0 + kSecond / 2)), 2u);
  EXPECT_EQ(RetryAfterSeconds(Bucket::TryTake(word, p, kT0 + kSecond + 1)), 1u);
}

TEST(Bucket, NowTicksIsPastTheEpochAndMonotonic) {
  uint64_t a = NowTicks();
  EXPECT_GE(a, kEpochTicks);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  uint64_t b = NowTicks();
  EXPECT_GE(b - a, 2 * kSecond / 1000);
}

// Threads whose `now` values interleave arbitrarily with their commits (as workers'
// clock reads do): over every window [t_i, t_j] of the allowed requests' times, at most
// burst + (t_j - t_i) * rate were allowed.
TEST(Bucket, ConcurrentTakersNeverExceedBurstPlusRate) {
  std::atomic<uint64_t> word{0};
  const double rate = 1000, burst = 20;
  BucketParams p = BucketParams::Of(rate, burst);
  std::atomic<uint64_t> clock{kT0};
  constexpr int kThreads = 4;
  std::vector<std::vector<uint64_t>> allowed(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      for (int i = 0; i < 20000; i++) {
        // Each thread reads the clock, advances it a little, then maybe waits a bit
        // before taking: its `now` is often older than what others already used.
        uint64_t now = clock.fetch_add(rng() % (kSecond / 20000));
        if (rng() % 4 == 0) std::this_thread::yield();
        if (Bucket::TryTake(word, p, now) == 0) allowed[t].push_back(now);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::vector<uint64_t> all;
  for (auto& v : allowed) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  ASSERT_GT(all.size(), 100u);
  for (size_t i = 0; i < all.size(); i++) {
    for (size_t j = i; j < all.size(); j++) {
      double span_s = static_cast<double>(all[j] - all[i]) / static_cast<double>(kSecond);
      double count = static_cast<double>(j - i + 1);
      ASSERT_LE(count, burst + span_s * rate + 1e-6) << "window " << i << ".." << j;
    }
  }
  // And the limit is not stricter than configured: the clock ran ~N s, about N*rate passed.
  double total_s = static_cast<double>(clock.load() - kT0) / static_cast<double>(kSecond);
  EXPECT_GE(static_cast<double>(all.size()), 0.9 * total_s * rate);
}

// The same with the real clock and threads spinning on the bucket.
TEST(Bucket, ConcurrentThreadsOnTheRealClock) {
  std::atomic<uint64_t> word{0};
  const double rate = 20000, burst = 500;
  BucketParams p = BucketParams::Of(rate, burst);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> allowed{0};
  uint64_t start = NowTicks();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        if (Bucket::TryTake(word, p, NowTicks()) == 0) allowed.fetch_add(1);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  for (auto& th : threads) th.join();
  double secs = static_cast<double>(NowTicks() - start) / static_cast<double>(kSecond);
  EXPECT_LE(static_cast<double>(allowed.load()), burst + secs * rate);
  // At least the burst (how close to the rate they come depends on the machine's load: a
  // starved thread loses tokens beyond the burst; ConcurrentTakersNeverExceedBurstPlusRate
  // checks that the limit is not stricter than configured).
  EXPECT_GE(static_cast<double>(allowed.load()), burst);
}

uint64_t Hash(uint64_t low, uint64_t high, uint64_t extra = 0) {
  return (extra << 60) | (high << 32) | low;
}

TEST(KeyedBuckets, KeysHaveTheirOwnBuckets) {
  KeyedBuckets table;
  BucketParams p = BucketParams::Of(1, 2);
  bool collided = false;
  uint64_t a = KeyHash("alice"), b = KeyHash("bob");
  ASSERT_NE(a, b);
  EXPECT_EQ(KeyHash("alice"), a);
  for (int i = 0; i < 2; i++) {
    EXPECT_EQ(table.TryTake(a, p, kT0, &collided), 0u);
    EXPECT_FALSE(collided);
  }
  EXPECT_NE(table.TryTake(a, p, kT0, &collided), 0u);
  for (int i = 0; i < 2; i++) EXPECT_EQ(table.TryTake(b, p, kT0, &collided), 0u);
  EXPECT_NE(table.TryTake(b, p, kT0, &collided), 0u);
  EXPECT_EQ(table.TryTake(a, p, kT0 + kSecond, &collided), 0u);
}

TEST(KeyedBuckets, FullBucketsAreTakenOverBusyOnesShared) {
  KeyedBuckets table;
  BucketParams p = BucketParams::Of(1, 1);
  bool collided = false;
  // Nine keys with the same two candidate groups (5 and 7): eight slots for them.
  std::vector<uint64_t> keys;
  for (uint64_t i = 0; i < 9; i++) keys.push_back(Hash(i % 2 ? 7 : 5, i % 2 ? 5 : 7, i));
  for (size_t i = 0; i < 8; i++) {
    EXPECT_EQ(table.TryTake(keys[i], p, kT0, &collided), 0u) << i;
    EXPECT_FALSE(collided) << i;
    EXPECT_NE(table.TryTake(keys[i], p, kT0, &collided), 0u) << i;  // its own, now empty
    EXPECT_FALSE(collided) << i;
  }
  // Every candidate holds a bucket of another key that is still refilling: the ninth key
  // shares one (empty) bucket, limited early rather than let through.
  EXPECT_NE(table.TryTake(keys[8], p, kT0, &collided), 0u);
  EXPECT_TRUE(collided);
  // A second later the buckets are full again: the ninth takes a slot over, with a full
  // bucket, and keeps it.
  EXPECT_EQ(table.TryTake(keys[8], p, kT0 + kSecond, &collided), 0u);
  EXPECT_FALSE(collided);
  EXPECT_NE(table.TryTake(keys[8], p, kT0 + kSecond, &collided), 0u);
  EXPECT_FALSE(collided);
  // The key that lost its slot takes over another full one, and so on down the line:
  // nine keys for eight slots, so the last one shares an empty bucket (early, never late).
  int allowed = 0, collisions = 0;
  for (size_t i = 0; i < 8; i++) {
    allowed += table.TryTake(keys[i], p, kT0 + kSecond, &collided) == 0;
    collisions += collided;
  }
  EXPECT_EQ(allowed, 7);
  EXPECT_EQ(collisions, 1);
}

TEST(KeyedBuckets, ManyKeysStayIndependent) {
  KeyedBuckets table;
  BucketParams p = BucketParams::Of(1, 1);
  bool collided = false;
  int refused = 0, collisions = 0;
  // 2000 clients within one second, each spending its single token, in a 16384-slot table.
  for (int i = 0; i < 2000; i++) {
    uint64_t h = KeyHash("10.0.0." + std::to_string(i));
    if (table.TryTake(h, p, kT0, &collided) != 0) refused++;
    collisions += collided;
  }
  EXPECT_EQ(refused, 0);
  EXPECT_EQ(collisions, 0);
  for (int i = 0; i < 2000; i++) {
    uint64_t h = KeyHash("10.0.0." + std::to_string(i));
    EXPECT_NE(table.TryTake(h, p, kT0, &collided), 0u) << i;
  }
}

TEST(KeyedBuckets, AnOverfullTableNeverLetsAKeyPastItsLimit) {
  KeyedBuckets table;
  BucketParams p = BucketParams::Of(1, 2);
  bool collided = false;
  int collisions = 0;
  // 40000 keys at once (more than the slots): keys share, but each gets at most its burst.
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 40000; i++) {
      uint64_t wait = table.TryTake(KeyHash("k" + std::to_string(i)), p, kT0, &collided);
      collisions += collided;
      if (round == 2) EXPECT_NE(wait, 0u) << i;
    }
  }
  EXPECT_GT(collisions, 0);
}

TEST(ListenerConnections, LimitRefusesAndCloseMakesRoom) {
  ListenerConnections c(2);
  EXPECT_TRUE(c.TryOpen(0, 2));
  EXPECT_TRUE(c.TryOpen(0, 2));
  EXPECT_FALSE(c.TryOpen(0, 2));
  EXPECT_EQ(c.refused(0), 1u);
  EXPECT_EQ(c.open(0), 2);
  EXPECT_TRUE(c.TryOpen(1, 0));  // other listener, no limit
  c.Close(0);
  EXPECT_TRUE(c.TryOpen(0, 2));
  EXPECT_EQ(c.open(0), 2);
  EXPECT_EQ(c.open(1), 1);
}

TEST(ListenerConnections, ConcurrentOpensNeverPassTheLimit) {
  ListenerConnections c(1);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; i++) {
        if (c.TryOpen(0, 100)) admitted++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(admitted.load(), 100);
  EXPECT_EQ(c.refused(0), 3900u);
}

zproxy::v1::Config Config(const std::string& text) {
  zproxy::v1::Config config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

std::shared_ptr<const routing::RouteTable> Table(const zproxy::v1::Config& config) {
  std::string error;
  auto table = routing::RouteTable::Build(config, &error);
  EXPECT_NE(table, nullptr) << error;
  return table;
}

const char* kTwoLimits = R"(
  clusters { name: "a" endpoints { address: "127.0.0.1:1" } }
  listeners {
    name: "web" address: "127.0.0.1:2"
    routes { match { prefix: "/free/" } cluster: "a" }
    routes { match { prefix: "/one/" } cluster: "a" rate_limit { requests_per_second: 1 burst: 1 } }
    routes { name: "two" match { prefix: "/two/" } cluster: "a"
             rate_limit { requests_per_second: 1 burst: 2 key: "header:X-User" } }
  }
)";

TEST(RateLimits, OneLimiterPerLimitedRouteInIndexOrder) {
  auto config = Config(kTwoLimits);
  auto table = Table(config);
  auto limits = RateLimits::Build(config, *table, nullptr);
  ASSERT_EQ(limits->size(), 2u);
  EXPECT_EQ(limits->routes()[0].listener, "web");
  EXPECT_EQ(limits->routes()[0].route, "routes[1]");
  EXPECT_EQ(limits->routes()[1].route, "two");
  const auto* one = table->Match(0, "h", "/one/x", "GET");
  const auto* two = table->Match(0, "h", "/two/x", "GET");
  ASSERT_TRUE(one && one->policy && two && two->policy);
  EXPECT_EQ(&limits->At(one->policy->rate_limit_index), limits->routes()[0].limiter.get());
  EXPECT_EQ(limits->At(two->policy->rate_limit_index).policy().header, "x-user");
  const RouteLimiter& l = limits->At(two->policy->rate_limit_index);
  EXPECT_EQ(l.TakeKey("u1", kT0), 0u);
  EXPECT_EQ(l.TakeKey("u1", kT0), 0u);
  EXPECT_NE(l.TakeKey("u1", kT0), 0u);
  EXPECT_EQ(l.TakeKey("u2", kT0), 0u);  // another key: its own budget
  EXPECT_EQ(l.Take(kT0), 0u);           // requests without the header share one bucket
  EXPECT_EQ(l.counters().limited.load(), 1u);
}

TEST(RateLimits, UnchangedRoutesKeepTheirBucketsAcrossConfigChanges) {
  auto config = Config(kTwoLimits);
  auto table = Table(config);
  auto first = RateLimits::Build(config, *table, nullptr);
  EXPECT_EQ(first->At(0).Take(kT0), 0u);
  EXPECT_NE(first->At(0).Take(kT0), 0u);

  // A route inserted in front of them (positions move) and another route's limit changed.
  auto next = config;
  auto* routes = next.mutable_listeners(0)->mutable_routes();
  routes->Mutable(2)->mutable_rate_limit()->set_requests_per_second(5);
  auto* added = routes->Add();
  added->mutable_match()->set_prefix("/new/");
  added->set_cluster("a");
  routes->SwapElements(0, routes->size() - 1);  // /new/ first
  auto table2 = Table(next);
  auto second = RateLimits::Build(next, *table2, first.get());
  ASSERT_EQ(second->size(), 2u);
  // /one/ (unnamed, same match, same limit): same limiter, still empty.
  const auto* one = table2->Match(0, "h", "/one/x", "GET");
  ASSERT_TRUE(one && one->policy);
  EXPECT_EQ(&second->At(one->policy->rate_limit_index), &first->At(0));
  EXPECT_NE(second->At(one->policy->rate_limit_index).Take(kT0), 0u);
  // "two" changed its rate: fresh buckets, counters kept.
  const auto* two = table2->Match(0, "h", "/two/x", "GET");
  ASSERT_TRUE(two && two->policy);
  const RouteLimiter& t2 = second->At(two->policy->rate_limit_index);
  EXPECT_NE(&t2, &first->At(1));
  EXPECT_EQ(t2.policy().requests_per_second, 5);
  EXPECT_EQ(&t2.counters(), &first->At(1).counters());
  EXPECT_EQ(t2.counters().limited.load(), 0u);
  EXPECT_EQ(first->At(0).counters().limited.load(), 2u);
}

}  // namespace
}  // namespace zproxy::ratelimit
