// Discovery against what this machine has without a DNS server of our own: /etc/hosts
// (c-ares answers "localhost" from it) and a resolver address nothing listens on. The
// e2e tests (tests/e2e/test_dns_upstreams.py) run it against a real DNS server.
#include "controlplane/dns/discovery.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace zproxy::dns {
namespace {

zproxy::v1::Config OneCluster(const std::string& endpoint) {
  zproxy::v1::Config c;
  c.mutable_dns()->add_resolvers("127.0.0.1:9");  // discard port: nothing answers
  c.mutable_dns()->set_timeout_ms(400);
  zproxy::v1::Cluster* cl = c.add_clusters();
  cl->set_name("app");
  cl->add_endpoints()->set_address(endpoint);
  return c;
}

TEST(DiscoveryTest, HostsFileNameIsLookedUpBeforeTheViewIsBuilt) {
  zproxy::v1::Config c = OneCluster("localhost:8080");
  std::string error;
  auto d = Discovery::Start(c, nullptr, &error);
  ASSERT_NE(d, nullptr) << error;
  d->EnsureLookedUp(c);
  zproxy::v1::Config view = c;
  d->Expand(&view);
  ASSERT_GE(view.clusters(0).endpoints_size(), 1);
  bool v4 = false;
  for (const auto& e : view.clusters(0).endpoints()) {
    EXPECT_EQ(e.resolved_from(), "localhost:8080");
    v4 |= e.address() == "127.0.0.1:8080";
  }
  EXPECT_TRUE(v4) << view.clusters(0).DebugString();
  EXPECT_NE(d->PrometheusText().find(
                "zproxy_upstream_dns_lookups_total{cluster=\"app\",name=\"localhost\","
                "result=\"ok\"} 1"),
            std::string::npos)
      << d->PrometheusText();
}

TEST(DiscoveryTest, NameWithoutAnswerHasNoAddressesAndSaysWhy) {
  zproxy::v1::Config c = OneCluster("api.zproxy-test.invalid:8080");
  std::string error;
  auto d = Discovery::Start(c, nullptr, &error);
  ASSERT_NE(d, nullptr) << error;
  d->EnsureLookedUp(c);
  zproxy::v1::Config view = c;
  d->Expand(&view);
  EXPECT_EQ(view.clusters(0).endpoints_size(), 0);
  std::vector<Discovery::NameInfo> names = d->Names();
  ASSERT_EQ(names.size(), 1u);
  EXPECT_NE(names[0].state.find("no addresses"), std::string::npos) << names[0].state;
}

TEST(DiscoveryTest, BadResolverIsRefusedAtStart) {
  zproxy::v1::Config c = OneCluster("localhost:1");
  c.mutable_dns()->set_resolvers(0, "not-an-ip");
  std::string error;
  EXPECT_EQ(Discovery::Start(c, nullptr, &error), nullptr);
  EXPECT_NE(error.find("dns.resolvers"), std::string::npos) << error;
}

}  // namespace
}  // namespace zproxy::dns
