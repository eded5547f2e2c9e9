#include "dataplane/upstream/lb.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace zproxy::upstream {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Counts heap allocations so tests can prove the hot path makes none.
std::atomic<long> g_allocations{0};
}  // namespace
}  // namespace zproxy::upstream

void* operator new(std::size_t size) {
  zproxy::upstream::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace zproxy::upstream {
namespace {

constexpr uint32_t kNone = EndpointSet::kNone;

ClusterLbConfig MakeConfig(LbAlgorithm algorithm, std::vector<uint32_t> weights) {
  ClusterLbConfig config;
  config.algorithm = algorithm;
  for (size_t i = 0; i < weights.size(); ++i) {
    EndpointConfig e;
    std::string error;
    EXPECT_TRUE(ParseNetAddress("127.0.0.1:" + std::to_string(3000 + i), &e.address, &error));
    e.weight = weights[i];
    config.endpoints.push_back(e);
  }
  return config;
}

std::vector<uint32_t> PickN(EndpointSet& set, int n) {
  std::vector<uint32_t> picks;
  for (int i = 0; i < n; ++i) picks.push_back(set.Pick());
  return picks;
}

// ---- BuildClusterLbConfig ----

TEST(BuildClusterLbConfigTest, MapsPolicyAddressesAndDefaultWeight) {
  zproxy::v1::Cluster cluster;
  cluster.set_lb(zproxy::v1::LEAST_CONNECTIONS);
  cluster.add_endpoints()->set_address("127.0.0.1:3000");
  auto* e = cluster.add_endpoints();
  e->set_address("[::1]:3001");
  e->set_weight(5);
  ClusterLbConfig config;
  std::string error;
  ASSERT_TRUE(BuildClusterLbConfig(cluster, &config, &error)) << error;
  EXPECT_EQ(config.algorithm, LbAlgorithm::kLeastConnections);
  ASSERT_EQ(config.endpoints.size(), 2u);
  EXPECT_EQ(config.endpoints[0].address.ToString(), "127.0.0.1:3000");
  EXPECT_EQ(config.endpoints[0].weight, 1u);  // 0 (unset) -> 1
  EXPECT_EQ(config.endpoints[1].address.ToString(), "[::1]:3001");
  EXPECT_EQ(config.endpoints[1].weight, 5u);
}

TEST(BuildClusterLbConfigTest, UnspecifiedIsRoundRobin) {
  zproxy::v1::Cluster cluster;
  ClusterLbConfig config;
  std::string error;
  ASSERT_TRUE(BuildClusterLbConfig(cluster, &config, &error)) << error;
  EXPECT_EQ(config.algorithm, LbAlgorithm::kRoundRobin);
  EXPECT_TRUE(config.endpoints.empty());
}

TEST(BuildClusterLbConfigTest, ErrorsNameTheField) {
  zproxy::v1::Cluster cluster;
  cluster.add_endpoints()->set_address("127.0.0.1:1");
  cluster.add_endpoints()->set_address("127.0.0.1");
  ClusterLbConfig config;
  std::string error;
  EXPECT_FALSE(BuildClusterLbConfig(cluster, &config, &error));
  EXPECT_THAT(error, HasSubstr("endpoints[1].address: missing port"));

  zproxy::v1::Cluster bad_policy;
  bad_policy.set_lb(static_cast<zproxy::v1::LbPolicy>(42));
  EXPECT_FALSE(BuildClusterLbConfig(bad_policy, &config, &error));
  EXPECT_EQ(error, "lb: unsupported policy 42");
}

// ---- Round robin ----

TEST(RoundRobinTest, EqualWeightsCycle) {
  EndpointSet set(MakeConfig(LbAlgorithm::kRoundRobin, {1, 1, 1}));
  EXPECT_THAT(PickN(set, 6), ElementsAre(0, 1, 2, 0, 1, 2));
}

TEST(RoundRobinTest, NginxSmoothSequence) {
  // The example from nginx's commit introducing smooth WRR: 5:1:1 -> a a b a c a a.
  EndpointSet set(MakeConfig(LbAlgorithm::kRoundRobin, {5, 1, 1}));
  EXPECT_THAT(PickN(set, 7), ElementsAre(0, 0, 1, 0, 2, 0, 0));
}

TEST(RoundRobinTest, Weights123ExactProportionsAndSmooth) {
  EndpointSet set(MakeConfig(LbAlgorithm::kRoundRobin, {1, 2, 3}));
  std::vector<uint32_t> picks = PickN(set, 600);
  std::map<uint32_t, int> count;
  for (uint32_t p : picks) ++count[p];
  EXPECT_EQ(count[0], 100);
  EXPECT_EQ(count[1], 200);
  EXPECT_EQ(count[2], 300);
  // Smooth: an endpoint never gets more consecutive picks than its weight, and every
  // window of one full cycle (sum of weights = 6) has exact proportions.
  int run = 1;
  for (size_t i = 1; i < picks.size(); ++i) {
    run = picks[i] == picks[i - 1] ? run + 1 : 1;
    ASSERT_LE(run, static_cast<int>(set.weight(picks[i]))) << "at pick " << i;
  }
  for (size_t start = 0; start + 6 <= picks.size(); start += 6) {
    int c[3] = {0, 0, 0};
    for (size_t i = start; i < start + 6; ++i) ++c[picks[i]];
    ASSERT_EQ(c[0], 1) << start;
    ASSERT_EQ(c[1], 2) << start;
    ASSERT_EQ(c[2], 3) << start;
  }
}

TEST(RoundRobinTest, ExcludeSkipsThatEndpoint) {
  EndpointSet set(MakeConfig(LbAlgorithm::kRoundRobin, {1, 1, 1}));
  for (int i = 0; i < 30; ++i) {
    uint32_t first = set.Pick();
    uint32_t retry = set.Pick(first);
    ASSERT_NE(retry, kNone);
    ASSERT_NE(retry, first);
  }
}

TEST(RoundRobinTest, SingleEndpointExcludeIsNone) {
  EndpointSet set(MakeConfig(LbAlgorithm::kRoundRobin, {3}));
  EXPECT_EQ(set.Pick(), 0u);
  EXPECT_EQ(set.Pick(0), kNone);
  EXPECT_EQ(set.Pick(), 0u);
}

TEST(RoundRobinTest, NoEndpointsIsNone) {
  EndpointSet set(MakeConfig(LbAlgorithm::kRoundRobin, {}));
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.Pick(), kNone);
}

TEST(RoundRobinTest, UnhealthySkippedAndProportionsKeptAmongTheRest) {
  EndpointSet set(MakeConfig(LbAlgorithm::kRoundRobin, {1, 2, 3}));
  uint8_t health[3] = {1, 1, 1};
  for (uint32_t i = 0; i < 3; ++i) set.SetHealthByte(i, &health[i]);
  health[2] = 0;
  std::map<uint32_t, int> count;
  for (uint32_t p : PickN(set, 300)) ++count[p];
  EXPECT_EQ(count[0], 100);
  EXPECT_EQ(count[1], 200);
  EXPECT_EQ(count[2], 0);
  EXPECT_FALSE(set.healthy(2));
  // Recovery is seen on the next pick: the byte is read every time.
  health[2] = 1;
  count.clear();
  for (uint32_t p : PickN(set, 600)) ++count[p];
  EXPECT_EQ(count[2], 300);
}

TEST(RoundRobinTest, AllUnhealthyIsNone) {
  EndpointSet set(MakeConfig(LbAlgorithm::kRoundRobin, {1, 1}));
  uint8_t down = 0;
  set.SetHealthByte(0, &down);
  set.SetHealthByte(1, &down);
  EXPECT_EQ(set.Pick(), kNone);
  EXPECT_EQ(set.Pick(1), kNone);
  set.SetHealthByte(1, nullptr);  // back to always healthy
  EXPECT_EQ(set.Pick(), 1u);
  EXPECT_EQ(set.Pick(1), kNone);  // the only healthy one is excluded
}

TEST(RoundRobinTest, PanicModeSpreadsOverAllWhenTooFewAreHealthy) {
  ClusterLbConfig config = MakeConfig(LbAlgorithm::kRoundRobin, {1, 1, 1, 1});
  config.panic_threshold_percent = 50;
  EndpointSet set(config);
  uint8_t down = 0;
  set.SetHealthByte(0, &down);  // 3 of 4 healthy (75% >= 50%): no panic
  for (int i = 0; i < 12; ++i) {
    EXPECT_NE(set.Pick(), 0u);
    EXPECT_FALSE(set.last_pick_panicked());
  }
  set.SetHealthByte(1, &down);
  set.SetHealthByte(2, &down);  // 1 of 4 healthy (25% < 50%): all four take traffic
  int count[4] = {0, 0, 0, 0};
  for (int i = 0; i < 40; ++i) {
    count[set.Pick()]++;
    EXPECT_TRUE(set.last_pick_panicked());
  }
  for (int c : count) EXPECT_EQ(c, 10);
  set.SetHealthByte(3, &down);  // none healthy: still served in panic mode
  EXPECT_NE(set.Pick(), kNone);
}

TEST(RoundRobinTest, WithoutPanicModeAllDownIsNone) {
  EndpointSet set(MakeConfig(LbAlgorithm::kRoundRobin, {1, 1}));
  uint8_t down = 0;
  set.SetHealthByte(0, &down);
  set.SetHealthByte(1, &down);
  EXPECT_EQ(set.Pick(), kNone);
  EXPECT_FALSE(set.last_pick_panicked());
}

// ---- Least connections ----

TEST(LeastConnectionsTest, PicksLeastLoaded) {
  EndpointSet set(MakeConfig(LbAlgorithm::kLeastConnections, {1, 1, 1}));
  for (int i = 0; i < 5; ++i) set.OnConnectionOpened(0);
  for (int i = 0; i < 3; ++i) set.OnConnectionOpened(1);
  for (int i = 0; i < 4; ++i) set.OnConnectionOpened(2);
  EXPECT_EQ(set.Pick(), 1u);
  EXPECT_EQ(set.Pick(), 1u);  // still least loaded: Pick alone does not count as load
  set.OnConnectionOpened(1);
  set.OnConnectionOpened(1);  // 1 now has 5
  EXPECT_EQ(set.Pick(), 2u);
  set.OnConnectionClosed(0);
  set.OnConnectionClosed(0);  // 0 now has 3
  EXPECT_EQ(set.Pick(), 0u);
  EXPECT_EQ(set.active(0), 3u);
  EXPECT_EQ(set.active(1), 5u);
  EXPECT_EQ(set.active(2), 4u);
}

TEST(LeastConnectionsTest, TiesRotate) {
  EndpointSet set(MakeConfig(LbAlgorithm::kLeastConnections, {1, 1, 1}));
  // Nothing in flight: equal load, so picks spread instead of all landing on 0.
  EXPECT_THAT(PickN(set, 6), ElementsAre(0, 1, 2, 0, 1, 2));
  set.OnConnectionOpened(1);
  // 0 and 2 tie at zero; the rotation continues from after the last pick.
  EXPECT_THAT(PickN(set, 4), ElementsAre(0, 2, 0, 2));
}

TEST(LeastConnectionsTest, RespectsWeights) {
  // Requests that never finish: in-flight counts must settle in the 1:3 weight ratio.
  EndpointSet set(MakeConfig(LbAlgorithm::kLeastConnections, {1, 3}));
  for (int i = 0; i < 400; ++i) {
    uint32_t p = set.Pick();
    ASSERT_NE(p, kNone);
    set.OnConnectionOpened(p);
    // Invariant of weighted least connections: loads stay within one request of the ratio.
    ASSERT_LE(set.active(0) * 3, set.active(1) + 3) << i;
    ASSERT_LE(set.active(1), set.active(0) * 3 + 3) << i;
  }
  EXPECT_EQ(set.active(0), 100u);
  EXPECT_EQ(set.active(1), 300u);
}

TEST(LeastConnectionsTest, WeightBeatsRawCount) {
  // 0: (4+1)/1 = 5; 1: (9+1)/4 = 2.5 -> 1 despite more connections.
  EndpointSet set(MakeConfig(LbAlgorithm::kLeastConnections, {1, 4}));
  for (int i = 0; i < 4; ++i) set.OnConnectionOpened(0);
  for (int i = 0; i < 9; ++i) set.OnConnectionOpened(1);
  EXPECT_EQ(set.Pick(), 1u);
}

TEST(LeastConnectionsTest, ExcludeAndHealth) {
  EndpointSet set(MakeConfig(LbAlgorithm::kLeastConnections, {1, 1, 1}));
  set.OnConnectionOpened(1);
  set.OnConnectionOpened(2);
  set.OnConnectionOpened(2);
  EXPECT_EQ(set.Pick(), 0u);
  EXPECT_EQ(set.Pick(0), 1u);  // retry elsewhere: next least loaded
  uint8_t down = 0;
  set.SetHealthByte(1, &down);
  EXPECT_EQ(set.Pick(0), 2u);
  set.SetHealthByte(0, &down);
  EXPECT_EQ(set.Pick(2), kNone);
  set.SetHealthByte(2, &down);
  EXPECT_EQ(set.Pick(), kNone);
}

TEST(LeastConnectionsTest, SingleEndpointExcludeIsNone) {
  EndpointSet set(MakeConfig(LbAlgorithm::kLeastConnections, {1}));
  EXPECT_EQ(set.Pick(), 0u);
  EXPECT_EQ(set.Pick(0), kNone);
}

TEST(EndpointSetTest, CloseSaturatesAndBadIndicesAreIgnored) {
  EndpointSet set(MakeConfig(LbAlgorithm::kLeastConnections, {1, 1}));
  set.OnConnectionClosed(0);
  EXPECT_EQ(set.active(0), 0u);
  set.OnConnectionOpened(7);
  set.OnConnectionClosed(kNone);
  set.SetHealthByte(9, nullptr);
  EXPECT_EQ(set.active(1), 0u);
  EXPECT_EQ(set.address(1).ToString(), "127.0.0.1:3001");
}

TEST(EndpointSetTest, PickDoesNotAllocate) {
  EndpointSet rr(MakeConfig(LbAlgorithm::kRoundRobin, {1, 2, 3}));
  EndpointSet lc(MakeConfig(LbAlgorithm::kLeastConnections, {1, 2, 3}));
  const long probe = g_allocations.load();
  ::operator delete(::operator new(4));  // the counter must see allocations, or this test is void
  ASSERT_GT(g_allocations.load(), probe);
  const long before = g_allocations.load();
  for (int i = 0; i < 100; ++i) {
    uint32_t a = rr.Pick();
    rr.Pick(a);
    uint32_t b = lc.Pick();
    lc.OnConnectionOpened(b);
    lc.Pick(b);
    lc.OnConnectionClosed(b);
  }
  EXPECT_EQ(g_allocations.load(), before);
}

}  // namespace
}  // namespace zproxy::upstream
