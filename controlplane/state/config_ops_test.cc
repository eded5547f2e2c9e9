#include "controlplane/state/config_ops.h"

#include <gtest/gtest.h>

#include "controlplane/config/defaults.h"
#include "controlplane/config/testing/minimal_config.h"

namespace zproxy::state {
namespace {

using zproxy::v1::Config;
using zproxy::v1::Route;

Config Base() {
  Config c = config::testing::MinimalConfig();
  c.mutable_clusters(0)->add_endpoints()->set_address("127.0.0.1:3001");
  auto* other = c.add_clusters();
  *other = c.clusters(0);
  other->set_name("other");
  config::ApplyDefaults(&c);  // the added endpoint gets its default weight
  return c;
}

Route PrefixRoute(const std::string& prefix, const std::string& cluster) {
  Route r;
  r.mutable_match()->set_prefix(prefix);
  r.set_cluster(cluster);
  return r;
}

TEST(ConfigOps, NewRouteGoesBeforeTheRouteThatCoversIt) {
  Config c = Base();
  ASSERT_TRUE(UpsertRoute(&c, "web", PrefixRoute("/api/", "other")).ok());
  ASSERT_TRUE(UpsertRoute(&c, "web", PrefixRoute("/api/v2/", "app")).ok());
  ASSERT_TRUE(UpsertRoute(&c, "web", PrefixRoute("/zzz/", "app")).ok());
  const auto& routes = c.listeners(0).routes();
  ASSERT_EQ(routes.size(), 4);
  EXPECT_EQ(routes[0].match().prefix(), "/api/v2/");
  EXPECT_EQ(routes[1].match().prefix(), "/api/");
  EXPECT_EQ(routes[2].match().prefix(), "/zzz/");
  EXPECT_EQ(routes[3].match().prefix(), "/");
}

TEST(ConfigOps, UpsertReplacesByNameOrMatch) {
  Config c = Base();
  ASSERT_TRUE(UpsertRoute(&c, "web", PrefixRoute("/", "other")).ok());
  EXPECT_EQ(c.listeners(0).routes_size(), 1);
  EXPECT_EQ(c.listeners(0).routes(0).cluster(), "other");
  Route named = PrefixRoute("/a/", "app");
  named.set_name("a");
  ASSERT_TRUE(UpsertRoute(&c, "web", named).ok());
  named.mutable_match()->set_prefix("/b/");
  ASSERT_TRUE(UpsertRoute(&c, "web", named).ok());
  ASSERT_EQ(c.listeners(0).routes_size(), 2);
  EXPECT_EQ(c.listeners(0).routes(0).match().prefix(), "/b/");
  ASSERT_TRUE(DeleteRoute(&c, "web", "a", {}).ok());
  EXPECT_EQ(c.listeners(0).routes_size(), 1);
  EXPECT_EQ(DeleteRoute(&c, "web", "a", {}).code, OpStatus::kNotFound);
  EXPECT_EQ(UpsertRoute(&c, "nope", named).code, OpStatus::kNotFound);
}

TEST(ConfigOps, DeleteClusterInUseNamesTheRoute) {
  Config c = Base();
  OpStatus st = DeleteCluster(&c, "app");
  EXPECT_EQ(st.code, OpStatus::kFailedPrecondition);
  EXPECT_NE(st.message.find("listeners[0].routes[0]"), std::string::npos) << st.message;
  EXPECT_TRUE(DeleteCluster(&c, "other").ok());
  EXPECT_EQ(c.clusters_size(), 1);
}

TEST(ConfigOps, CandidateErrorsNameTheField) {
  Config c = Base();
  Config cand = c;
  ASSERT_TRUE(UpsertRoute(&cand, "web", PrefixRoute("nope", "missing")).ok());
  OpStatus st = CheckCandidate(c, cand);
  EXPECT_EQ(st.code, OpStatus::kInvalidArgument);
  EXPECT_NE(st.message.find("listeners[0].routes[1].match.prefix"), std::string::npos);
  EXPECT_NE(st.message.find("listeners[0].routes[1].cluster"), std::string::npos);

  cand = c;
  cand.set_workers(7);
  st = CheckCandidate(c, cand);
  EXPECT_NE(st.message.find("workers: cannot change at run time"), std::string::npos);
}

TEST(ConfigOps, DrainKeepsOneServingAndTheDataplaneViewDropsIt) {
  Config c = Base();
  ASSERT_TRUE(DrainEndpoint(&c, "app", "127.0.0.1:3000", false).ok());
  EXPECT_TRUE(CheckCandidate(Base(), c).ok());
  EXPECT_EQ(DataplaneView(c).clusters(0).endpoints_size(), 1);
  ASSERT_TRUE(DrainEndpoint(&c, "app", "127.0.0.1:3001", false).ok());
  EXPECT_NE(CheckCandidate(Base(), c).message.find("clusters[0].endpoints"), std::string::npos);
  EXPECT_EQ(SetEndpointWeight(&c, "app", "127.0.0.1:9", 3).code, OpStatus::kNotFound);
  ASSERT_TRUE(SetEndpointWeight(&c, "app", "127.0.0.1:3000", 3).ok());
  EXPECT_EQ(c.clusters(0).endpoints(0).weight(), 3u);
}

}  // namespace
}  // namespace zproxy::state
