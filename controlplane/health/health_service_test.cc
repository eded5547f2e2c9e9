#include "controlplane/health/health_service.h"

#include <unistd.h>

#include <map>

#include "controlplane/health/test_servers.h"
#include "gtest/gtest.h"

namespace zproxy::health {
namespace {

using std::chrono::milliseconds;

zproxy::v1::Config TwoClusters(const std::string& dead, const std::string& live) {
  zproxy::v1::Config c;
  auto* app = c.add_clusters();
  app->set_name("app");
  app->add_endpoints()->set_address(dead);
  app->add_endpoints()->set_address(live);
  auto* hc = app->mutable_health_check();
  hc->set_interval_ms(30);
  hc->set_timeout_ms(200);
  hc->set_healthy_threshold(1);
  hc->set_unhealthy_threshold(2);
  auto* unchecked = c.add_clusters();
  unchecked->set_name("plain");
  unchecked->add_endpoints()->set_address(dead);
  return c;
}

TEST(HealthServiceTest, TransitionsReachSubscribersAndTheRegion) {
  HealthService service(32);
  std::string error;
  ASSERT_TRUE(service.Start(&error)) << error;
  auto sub = service.events().Subscribe();
  testing::SilentListener live;
  const std::string dead = testing::ClosedAddress();
  auto config = TwoClusters(dead, live.address());
  service.Apply(config);

  HealthEvent ev;
  ASSERT_TRUE(sub->Next(&ev, milliseconds(3000)));
  EXPECT_EQ(ev.cluster, "app");
  EXPECT_EQ(ev.address, dead);
  EXPECT_FALSE(ev.healthy);
  EXPECT_LE(ev.time, std::chrono::system_clock::now());

  zproxy::v1::DataplaneBootstrap boot;
  std::vector<int> fds = {100, 101};  // the listen sockets come first
  service.FillBootstrap(config, &boot, &fds);
  ASSERT_EQ(fds.size(), 3u);
  ASSERT_TRUE(boot.has_health_region_fd_index());
  EXPECT_EQ(boot.health_region_fd_index(), 2u);
  EXPECT_EQ(fds[2], service.region().fd());
  ASSERT_EQ(boot.health_slots_size(), 2) << "only the checked cluster's endpoints get slots";
  uint32_t dead_slot = 0;
  for (const auto& s : boot.health_slots()) {
    EXPECT_EQ(s.cluster(), "app");
    if (s.address() == dead) dead_slot = s.slot();
  }
  HealthRegion reader;
  ASSERT_TRUE(HealthRegion::MapReadOnly(fds[2], &reader, &error)) << error;
  EXPECT_FALSE(reader.Healthy(dead_slot));

  // A config change that adds an endpoint keeps the slots (and state) of the others.
  testing::SilentListener extra;
  config.mutable_clusters(0)->add_endpoints()->set_address(extra.address());
  service.Apply(config);
  zproxy::v1::DataplaneBootstrap boot2;
  std::vector<int> fds2;
  service.FillBootstrap(config, &boot2, &fds2);
  ASSERT_EQ(boot2.health_slots_size(), 3);
  for (const auto& s : boot2.health_slots()) {
    for (const auto& old : boot.health_slots()) {
      if (old.address() == s.address()) {
        EXPECT_EQ(old.slot(), s.slot()) << s.address();
      }
    }
  }
  EXPECT_FALSE(reader.Healthy(dead_slot));
  EXPECT_FALSE(sub->Next(&ev, milliseconds(200))) << "no transition from an unchanged endpoint";

  // Removing the health check stops checking (no slots in the next bootstrap).
  config.mutable_clusters(0)->clear_health_check();
  service.Apply(config);
  zproxy::v1::DataplaneBootstrap boot3;
  std::vector<int> fds3;
  service.FillBootstrap(config, &boot3, &fds3);
  EXPECT_EQ(boot3.health_slots_size(), 0);
  for (int i = 0; i < 100 && !service.States().empty(); i++) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_TRUE(service.States().empty());
  service.Stop();
}

TEST(HealthServiceTest, ResetKeepsTheAdoptedDataplanesSlotsAndVerdicts) {
  HealthService service(32);
  std::string error;
  ASSERT_TRUE(service.Start(&error)) << error;
  testing::SilentListener live;
  const std::string dead = testing::ClosedAddress();
  // The adopted data plane read `dead` at slot 7 (down) and `live` at slot 3 (up).
  service.Reset({{"app", dead, 7, false}, {"app", live.address(), 3, true}});
  EXPECT_FALSE(service.region().Healthy(7));
  EXPECT_TRUE(service.region().Healthy(3));
  auto config = TwoClusters(dead, live.address());
  config.mutable_clusters(0)->mutable_health_check()->set_interval_ms(60000);  // no probe yet
  service.Apply(config);
  zproxy::v1::DataplaneBootstrap boot;
  std::vector<int> fds;
  service.FillBootstrap(config, &boot, &fds);
  for (const auto& s : boot.health_slots()) {
    EXPECT_EQ(s.slot(), s.address() == dead ? 7u : 3u) << s.address();
  }
  // The checker starts from the inherited verdict instead of "healthy".
  for (int i = 0; i < 100 && service.States().size() < 2; i++) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  for (const EndpointHealth& h : service.States()) EXPECT_EQ(h.healthy, h.address != dead);
  EXPECT_FALSE(service.region().Healthy(7));
  service.Stop();
}

// protocol: http2 + grpc_service makes the probe gRPC: a port that accepts TCP but never
// speaks HTTP/2 is healthy for a TCP check and unhealthy for this one (a timeout), and a
// refused port fails with gRPC's own status.
TEST(HealthServiceTest, GrpcServiceOnHttp2ClusterProbesWithGrpc) {
  HealthService service(32);
  std::string error;
  ASSERT_TRUE(service.Start(&error)) << error;
  auto sub = service.events().Subscribe();
  testing::SilentListener silent;
  const std::string dead = testing::ClosedAddress();
  zproxy::v1::Config c = TwoClusters(dead, silent.address());
  c.mutable_clusters(0)->set_protocol(zproxy::v1::HTTP2);
  c.mutable_clusters(0)->mutable_health_check()->set_grpc_service("app.Svc");
  service.Apply(c);

  std::map<std::string, std::string> reasons;
  HealthEvent ev;
  while (reasons.size() < 2 && sub->Next(&ev, milliseconds(3000))) {
    EXPECT_EQ(ev.cluster, "app");
    EXPECT_FALSE(ev.healthy);
    reasons[ev.address] = ev.reason;
  }
  ASSERT_EQ(reasons.size(), 2u);
  EXPECT_EQ(reasons[dead].rfind("gRPC status 14: ", 0), 0u) << reasons[dead];
  EXPECT_EQ(reasons[silent.address()].rfind("timeout after 200 ms", 0), 0u)
      << reasons[silent.address()];
  service.Stop();
}

}  // namespace
}  // namespace zproxy::health
