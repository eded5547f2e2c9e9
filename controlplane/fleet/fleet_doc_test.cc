#include "controlplane/fleet/fleet_doc.h"

#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

namespace zproxy::fleet {
namespace {

using google::protobuf::util::MessageDifferencer;
using zproxy::v1::Config;

Config Fleet() {
  Config f;
  auto* l = f.add_listeners();
  l->set_name("web");
  l->set_address("0.0.0.0:8080");
  l->add_routes()->set_cluster("app");
  auto* c = f.add_clusters();
  c->set_name("app");
  c->add_endpoints()->set_address("127.0.0.1:3000");
  return f;
}

Config NodeFile() {
  Config n;
  n.set_admin_address("unix:/run/a.sock");
  n.set_workers(2);
  n.mutable_node()->set_name("a");
  (*n.mutable_node()->mutable_listener_addresses())["web"] = "127.0.0.1:18001";
  n.add_listeners()->set_name("ignored");  // the file's own fleet part is replaced
  return n;
}

TEST(Keys, LayoutUnderThePrefix) {
  EXPECT_EQ(NormalizePrefix("/zproxy/a"), "/zproxy/a/");
  EXPECT_EQ(NormalizePrefix("/zproxy/a/"), "/zproxy/a/");
  EXPECT_EQ(ConfigKey("/zproxy/a"), "/zproxy/a/config");
  EXPECT_EQ(NodeKey("/zproxy/a/", "n1"), "/zproxy/a/nodes/n1");
  EXPECT_EQ(PrefixRangeEnd("/zproxy/a/nodes/"), "/zproxy/a/nodes0");
  EXPECT_EQ(PrefixRangeEnd(std::string("a\xff", 2)), "b");
}

TEST(MergeNode, FleetFieldsReplacedNodeLocalKeptOverridesApplied) {
  Config merged = MergeNode(NodeFile(), Fleet());
  EXPECT_EQ(merged.admin_address(), "unix:/run/a.sock");
  EXPECT_EQ(merged.workers(), 2u);
  ASSERT_EQ(merged.listeners_size(), 1);
  EXPECT_EQ(merged.listeners(0).name(), "web");
  EXPECT_EQ(merged.listeners(0).address(), "127.0.0.1:18001");
  EXPECT_EQ(merged.clusters_size(), 1);
}

TEST(UnmergeNode, TheNodesOverrideNeverReachesTheFleet) {
  Config merged = MergeNode(NodeFile(), Fleet());
  merged.mutable_listeners(0)->add_routes()->set_cluster("app");
  Config fleet = UnmergeNode(merged, Fleet(), NodeFile().node());
  EXPECT_EQ(fleet.listeners(0).address(), "0.0.0.0:8080");
  EXPECT_EQ(fleet.listeners(0).routes_size(), 2);
  EXPECT_TRUE(fleet.admin_address().empty());
  // An address changed on purpose (not the override) is kept.
  merged.mutable_listeners(0)->set_address("0.0.0.0:9090");
  EXPECT_EQ(UnmergeNode(merged, Fleet(), NodeFile().node()).listeners(0).address(), "0.0.0.0:9090");
}

TEST(NodeLocalChanges, NamesOnlyNonFleetFields) {
  Config a = MergeNode(NodeFile(), Fleet());
  Config b = a;
  b.add_clusters()->set_name("other");
  EXPECT_TRUE(NodeLocalChanges(a, b).empty());
  b.set_workers(4);
  b.set_access_log("stderr");
  std::vector<std::string> changed = NodeLocalChanges(a, b);
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[0], "workers");
  EXPECT_EQ(changed[1], "access_log");
}

TEST(FleetDocument, JsonRoundTrip) {
  Config parsed;
  std::string error;
  ASSERT_TRUE(ParseFleet(SerializeFleet(MergeNode(NodeFile(), Fleet())), &parsed, &error)) << error;
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, FleetPart(MergeNode(NodeFile(), Fleet()))));
  EXPECT_TRUE(parsed.admin_address().empty());
}

TEST(FleetDocument, YamlAsWrittenByAnOperator) {
  Config parsed;
  std::string error;
  ASSERT_TRUE(
      ParseFleet("listeners:\n  - name: web\n    address: 0.0.0.0:8080\n    routes:\n"
                 "      - match: { prefix: / }\n        cluster: app\n"
                 "clusters:\n  - name: app\n    endpoints: [ 127.0.0.1:3000 ]\n",
                 &parsed, &error))
      << error;
  EXPECT_EQ(parsed.listeners(0).routes(0).cluster(), "app");
  EXPECT_EQ(parsed.clusters(0).endpoints(0).address(), "127.0.0.1:3000");
}

TEST(FleetDocument, NodeLocalFieldsAndBadInputAreRefusedByName) {
  Config parsed;
  std::string error;
  EXPECT_FALSE(ParseFleet("workers: 3\n", &parsed, &error));
  EXPECT_NE(error.find("workers"), std::string::npos) << error;
  EXPECT_FALSE(ParseFleet("listeners:\n  - nme: web\n", &parsed, &error));
  EXPECT_NE(error.find("nme"), std::string::npos) << error;
  EXPECT_FALSE(ParseFleet("{\"listeners\": 3}", &parsed, &error));
  EXPECT_NE(error.find("listeners"), std::string::npos) << error;
}

}  // namespace
}  // namespace zproxy::fleet
