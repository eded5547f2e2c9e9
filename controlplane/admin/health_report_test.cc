#include "controlplane/admin/health_report.h"

#include <gtest/gtest.h>

namespace zproxy::admin {
namespace {

using Clock = std::chrono::system_clock;

Clock::time_point AtMs(int64_t ms) { return Clock::time_point(std::chrono::milliseconds(ms)); }

v1::Config TwoClusters() {
  v1::Config c;
  auto* plain = c.add_clusters();
  plain->set_name("plain");
  auto* e = plain->add_endpoints();
  e->set_address("127.0.0.1:1");
  e->set_weight(3);
  auto* checked = c.add_clusters();
  checked->set_name("web");
  checked->mutable_health_check()->set_http_path("/healthz");
  for (const char* a : {"127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"}) {
    auto* ep = checked->add_endpoints();
    ep->set_address(a);
    ep->set_weight(1);
  }
  checked->mutable_endpoints(2)->set_draining(true);
  return c;
}

health::EndpointHealth Down(const std::string& address) {
  health::EndpointHealth h;
  h.cluster = "web";
  h.address = address;
  h.healthy = false;
  h.last_ok = false;
  h.last_result = "connect: Connection refused";
  h.failures = 4;
  h.last_check = AtMs(5000);
  h.last_transition = AtMs(3000);
  h.checking_since = AtMs(1000);
  return h;
}

TEST(HealthReport, MergesConfigAndCheckerStatesInConfigOrder) {
  health::EndpointHealth up;
  up.cluster = "web";
  up.address = "127.0.0.1:2";
  up.last_ok = true;
  up.last_result = "HTTP 200";
  up.successes = 7;
  up.last_check = AtMs(4000);
  up.checking_since = AtMs(1000);
  v1::HealthResponse r;
  std::string error;
  ASSERT_TRUE(
      BuildHealthReport(TwoClusters(), {Down("127.0.0.1:3"), up}, "", AtMs(6000), &r, &error));
  ASSERT_EQ(r.endpoints_size(), 4);
  EXPECT_EQ(r.unix_time_ms(), 6000);

  const auto& plain = r.endpoints(0);
  EXPECT_EQ(plain.cluster(), "plain");
  EXPECT_TRUE(plain.healthy());
  EXPECT_EQ(plain.source(), v1::HEALTH_SOURCE_NO_CHECK);
  EXPECT_EQ(plain.weight(), 3u);
  EXPECT_EQ(plain.check(), "");
  EXPECT_EQ(plain.checking_since_unix_ms(), 0);

  const auto& a = r.endpoints(1);
  EXPECT_EQ(a.address(), "127.0.0.1:2");
  EXPECT_TRUE(a.healthy());
  EXPECT_EQ(a.source(), v1::HEALTH_SOURCE_ACTIVE_CHECK);
  EXPECT_EQ(a.check(), "http GET /healthz");
  EXPECT_TRUE(a.last_check_ok());
  EXPECT_EQ(a.consecutive_successes(), 7u);
  EXPECT_EQ(a.last_transition_unix_ms(), 0);  // none since checking began
  EXPECT_EQ(a.last_check_unix_ms(), 4000);

  const auto& b = r.endpoints(2);
  EXPECT_EQ(b.address(), "127.0.0.1:3");
  EXPECT_FALSE(b.healthy());
  EXPECT_FALSE(b.last_check_ok());
  EXPECT_EQ(b.last_check_reason(), "connect: Connection refused");
  EXPECT_EQ(b.consecutive_failures(), 4u);
  EXPECT_EQ(b.last_transition_unix_ms(), 3000);
  EXPECT_EQ(b.checking_since_unix_ms(), 1000);

  // Checked cluster, no state yet (the checker has not applied the config): healthy.
  const auto& c = r.endpoints(3);
  EXPECT_TRUE(c.healthy());
  EXPECT_TRUE(c.draining());
  EXPECT_EQ(c.source(), v1::HEALTH_SOURCE_ACTIVE_CHECK);
  EXPECT_EQ(c.last_check_unix_ms(), 0);

  ASSERT_EQ(r.clusters_size(), 2);
  EXPECT_EQ(r.clusters(0).cluster(), "plain");
  EXPECT_EQ(r.clusters(0).healthy(), 1u);
  EXPECT_EQ(r.clusters(1).endpoints(), 3u);
  EXPECT_EQ(r.clusters(1).healthy(), 2u);
  EXPECT_EQ(r.clusters(1).draining(), 1u);
}

TEST(HealthReport, OneClusterOrNotFoundNamingIt) {
  v1::HealthResponse r;
  std::string error;
  ASSERT_TRUE(BuildHealthReport(TwoClusters(), {}, "plain", AtMs(1), &r, &error));
  ASSERT_EQ(r.endpoints_size(), 1);
  ASSERT_EQ(r.clusters_size(), 1);
  v1::HealthResponse none;
  EXPECT_FALSE(BuildHealthReport(TwoClusters(), {}, "nope", AtMs(1), &none, &error));
  EXPECT_EQ(error, "cluster \"nope\" not found");
  EXPECT_EQ(none.endpoints_size(), 0);
}

TEST(HealthReport, StatesOfOtherClustersOrAddressesAreIgnored) {
  health::EndpointHealth stale = Down("127.0.0.1:9");  // removed from the config
  v1::HealthResponse r;
  std::string error;
  ASSERT_TRUE(BuildHealthReport(TwoClusters(), {stale}, "web", AtMs(1), &r, &error));
  for (const auto& e : r.endpoints()) EXPECT_TRUE(e.healthy()) << e.address();
}

TEST(HealthReport, CheckDescription) {
  v1::Cluster c;
  EXPECT_EQ(CheckDescription(c), "");
  c.mutable_health_check();
  EXPECT_EQ(CheckDescription(c), "tcp connect");
  c.mutable_health_check()->set_http_path("/h");
  EXPECT_EQ(CheckDescription(c), "http GET /h");
  c.mutable_tls();
  EXPECT_EQ(CheckDescription(c), "https GET /h");
}

TEST(HealthReport, CheckDescriptionGrpc) {
  v1::Cluster c;
  c.mutable_health_check()->set_grpc_service("app.Svc");
  EXPECT_EQ(CheckDescription(c), "tcp connect");  // http1 clusters never check gRPC
  c.set_protocol(v1::HTTP2);
  EXPECT_EQ(CheckDescription(c), "grpc Health/Check app.Svc");
  c.mutable_health_check()->set_grpc_service("");
  EXPECT_EQ(CheckDescription(c), "grpc Health/Check \"\"");
  c.mutable_tls();
  EXPECT_EQ(CheckDescription(c), "grpcs Health/Check \"\"");
}

// A host-name endpoint: one row per address with the name and its DNS state, health
// from the checker by address; a name without addresses is one unhealthy row.
TEST(HealthReport, HostNameEndpointsShowTheirAddresses) {
  v1::Config c;
  auto* web = c.add_clusters();
  web->set_name("web");
  web->mutable_health_check()->set_http_path("/healthz");
  web->add_endpoints()->set_address("api.internal:8080");
  web->add_endpoints()->set_address("gone.internal:8080");
  ResolvedNames names;
  names[{"web", "api.internal"}] = ResolvedName{{"10.0.0.1", "fd00::1"}, "2 addresses, TTL 30 s"};
  names[{"web", "gone.internal"}] = ResolvedName{{}, "NXDOMAIN since 3 s ago; no addresses"};
  v1::HealthResponse r;
  std::string error;
  ASSERT_TRUE(BuildHealthReport(c, {Down("10.0.0.1:8080")}, "", AtMs(6000), &r, &error, &names))
      << error;
  ASSERT_EQ(r.endpoints_size(), 3);
  EXPECT_EQ(r.endpoints(0).address(), "10.0.0.1:8080");
  EXPECT_EQ(r.endpoints(0).hostname(), "api.internal:8080");
  EXPECT_EQ(r.endpoints(0).dns(), "2 addresses, TTL 30 s");
  EXPECT_FALSE(r.endpoints(0).healthy());  // the checker's verdict for that address
  EXPECT_EQ(r.endpoints(1).address(), "[fd00::1]:8080");
  EXPECT_TRUE(r.endpoints(1).healthy());
  EXPECT_EQ(r.endpoints(2).address(), "gone.internal:8080");
  EXPECT_FALSE(r.endpoints(2).healthy());
  EXPECT_NE(r.endpoints(2).last_check_reason().find("no addresses: NXDOMAIN"), std::string::npos);
  ASSERT_EQ(r.clusters_size(), 1);
  EXPECT_EQ(r.clusters(0).endpoints(), 3u);
  EXPECT_EQ(r.clusters(0).healthy(), 1u);
}

}  // namespace
}  // namespace zproxy::admin
