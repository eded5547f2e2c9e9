#include "controlplane/dns/name_table.h"

#include <gtest/gtest.h>

#include "controlplane/dns/expand.h"

namespace zproxy::dns {
namespace {

DnsSettings Settings() {
  DnsSettings s;
  s.min_refresh_ms = 1000;
  s.max_refresh_ms = 60000;
  s.failure_refresh_ms = 2000;
  s.stale_ms = 10000;
  s.timeout_ms = 2000;
  return s;
}

LookupOutcome Ok(std::vector<std::string> ips, uint32_t ttl) {
  LookupOutcome o;
  o.ok = true;
  o.ips = std::move(ips);
  o.ttl_s = ttl;
  return o;
}

LookupOutcome Fail(std::string error) {
  LookupOutcome o;
  o.error = std::move(error);
  return o;
}

const NameKey kKey{"app", "api.internal"};

class NameTableTest : public ::testing::Test {
 protected:
  void SetUp() override { t.Track({NameRef{"app", "api.internal", Settings()}}, true); }
  NameTable t;
  std::string log;
};

TEST_F(NameTableTest, NewNameIsDueAtOnceAndNotTwiceWhileInFlight) {
  ASSERT_EQ(t.Due(0).size(), 1u);
  t.MarkInFlight(kKey);
  EXPECT_TRUE(t.Due(100000).empty());
}

TEST_F(NameTableTest, TtlIsClampedToTheRefreshBounds) {
  EXPECT_TRUE(t.OnOutcome(kKey, Ok({"10.0.0.2", "10.0.0.1", "10.0.0.1"}, 0), 0, &log));
  EXPECT_EQ(t.Find("app", "api.internal")->ips, (std::vector<std::string>{"10.0.0.1", "10.0.0.2"}));
  EXPECT_EQ(t.Find("app", "api.internal")->next_lookup_ms, 1000);  // TTL 0 -> min
  EXPECT_NE(log.find("10.0.0.1, 10.0.0.2"), std::string::npos) << log;
  log.clear();
  EXPECT_FALSE(t.OnOutcome(kKey, Ok({"10.0.0.1", "10.0.0.2"}, 30), 1000, &log));
  EXPECT_EQ(t.Find("app", "api.internal")->next_lookup_ms, 31000);  // TTL honoured
  EXPECT_TRUE(log.empty()) << log;                                  // nothing changed: no line
  EXPECT_FALSE(t.OnOutcome(kKey, Ok({"10.0.0.2", "10.0.0.1"}, 86400), 2000, &log));
  EXPECT_EQ(t.Find("app", "api.internal")->next_lookup_ms, 62000);  // cut to max
}

TEST_F(NameTableTest, FailureKeepsTheLastAddressesUntilStaleThenDropsThem) {
  t.OnOutcome(kKey, Ok({"10.0.0.1"}, 5), 0, &log);
  log.clear();
  EXPECT_FALSE(t.OnOutcome(kKey, Fail("NXDOMAIN"), 5000, &log));
  EXPECT_NE(log.find("NXDOMAIN; keeping its last addresses (10.0.0.1)"), std::string::npos) << log;
  const NameState* s = t.Find("app", "api.internal");
  EXPECT_EQ(s->ips.size(), 1u);
  EXPECT_EQ(s->next_lookup_ms, 7000);  // failure_refresh_ms
  EXPECT_NE(NameTable::Describe(*s, 6000).find("keeping 1 address (stale) for 9 s more"),
            std::string::npos)
      << NameTable::Describe(*s, 6000);
  log.clear();
  EXPECT_FALSE(t.OnOutcome(kKey, Fail("NXDOMAIN"), 7000, &log));
  EXPECT_TRUE(log.empty()) << "one line per state change, got: " << log;
  EXPECT_EQ(t.NextDeadline(), 9000);  // the next lookup comes before the stale bound
  std::vector<std::string> logs;
  EXPECT_FALSE(t.ExpireStale(14999, &logs));
  EXPECT_TRUE(t.ExpireStale(15000, &logs));
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].find("dropping its stale addresses (10.0.0.1)"), std::string::npos) << logs[0];
  EXPECT_TRUE(s->ips.empty());
  EXPECT_EQ(NameTable::Describe(*s, 15000), "NXDOMAIN since 10 s ago; no addresses");
  // It comes back.
  log.clear();
  EXPECT_TRUE(t.OnOutcome(kKey, Ok({"10.0.0.3"}, 5), 16000, &log));
  EXPECT_NE(log.find("resolving again"), std::string::npos) << log;
  EXPECT_EQ(s->failing_since_ms, -1);
}

TEST_F(NameTableTest, AnEmptyAnswerIsAFailure) {
  t.OnOutcome(kKey, Ok({}, 5), 0, &log);
  EXPECT_NE(log.find("no A/AAAA records; no addresses"), std::string::npos) << log;
}

TEST_F(NameTableTest, TrackPrunesNamesNoLongerUsed) {
  t.Track({NameRef{"app", "other.internal", Settings()}}, /*prune=*/false);
  EXPECT_EQ(t.entries().size(), 2u);
  t.Track({NameRef{"app", "other.internal", Settings()}}, /*prune=*/true);
  EXPECT_EQ(t.entries().size(), 1u);
  EXPECT_EQ(t.Find("app", "api.internal"), nullptr);
  EXPECT_FALSE(t.OnOutcome(kKey, Ok({"10.0.0.1"}, 5), 0, &log));  // a late answer is ignored
}

TEST(ExpandTest, NamesBecomeOneEndpointPerAddress) {
  NameTable t;
  t.Track({NameRef{"app", "api.internal", Settings()}, NameRef{"app", "gone.internal", Settings()}},
          true);
  std::string log;
  t.OnOutcome(kKey, Ok({"10.0.0.2", "10.0.0.1", "fd00::1"}, 5), 0, &log);
  t.OnOutcome({"app", "gone.internal"}, Fail("NXDOMAIN"), 0, &log);
  zproxy::v1::Config c;
  c.mutable_dns()->set_min_refresh_ms(500);
  zproxy::v1::Cluster* cl = c.add_clusters();
  cl->set_name("app");
  cl->mutable_dns()->set_family("v4");
  cl->add_endpoints()->set_address("10.0.0.1:8080");  // also a resolved address: not repeated
  zproxy::v1::Endpoint* named = cl->add_endpoints();
  named->set_address("api.internal:8080");
  named->set_weight(3);
  cl->add_endpoints()->set_address("gone.internal:8080");
  zproxy::v1::Cluster* other = c.add_clusters();
  other->set_name("static");
  other->add_endpoints()->set_address("127.0.0.1:1");
  ExpandNamedEndpoints(t, &c);
  EXPECT_FALSE(c.has_dns());
  EXPECT_FALSE(c.clusters(0).has_dns());
  ASSERT_EQ(c.clusters(0).endpoints_size(), 3);
  EXPECT_EQ(c.clusters(0).endpoints(0).address(), "10.0.0.1:8080");
  EXPECT_EQ(c.clusters(0).endpoints(0).resolved_from(), "");
  EXPECT_EQ(c.clusters(0).endpoints(1).address(), "10.0.0.2:8080");
  EXPECT_EQ(c.clusters(0).endpoints(1).resolved_from(), "api.internal:8080");
  EXPECT_EQ(c.clusters(0).endpoints(1).weight(), 3u);
  EXPECT_EQ(c.clusters(0).endpoints(2).address(), "[fd00::1]:8080");
  ASSERT_EQ(c.clusters(1).endpoints_size(), 1);
  EXPECT_EQ(c.clusters(1).endpoints(0).address(), "127.0.0.1:1");
}

TEST(DnsSettingsTest, ClusterOverridesTopLevelOverridesDefaults) {
  zproxy::v1::Config c;
  c.mutable_dns()->set_max_refresh_ms(9000);
  c.mutable_dns()->set_family("v6");
  zproxy::v1::Cluster cl;
  cl.mutable_dns()->set_max_refresh_ms(4000);
  DnsSettings s = EffectiveDns(c, cl);
  EXPECT_EQ(s.max_refresh_ms, 4000u);
  EXPECT_EQ(s.min_refresh_ms, 1000u);
  EXPECT_EQ(s.family, Family::kV6);
  std::string host;
  uint16_t port = 0;
  EXPECT_TRUE(NamedEndpoint("api.internal:80", &host, &port));
  EXPECT_EQ(host, "api.internal");
  EXPECT_FALSE(NamedEndpoint("[::1]:80", &host, &port));
  EXPECT_FALSE(NamedEndpoint("10.1.2.3:80", &host, &port));
}

}  // namespace
}  // namespace zproxy::dns
