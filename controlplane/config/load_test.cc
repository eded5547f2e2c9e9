#include "controlplane/config/load.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

namespace zproxy::config {
namespace {

std::string Joined(const ConfigErrors& errors) {
  std::string out;
  for (const auto& e : errors) out += e.ToString() + "\n";
  return out;
}

TEST(Load, ExampleFileIsValid) {
  LoadResult r = LoadConfigFile("examples/zproxy.yaml");
  ASSERT_TRUE(r.ok()) << Joined(r.errors);
  ASSERT_EQ(r.config.listeners_size(), 1);
  EXPECT_EQ(r.config.listeners(0).address(), "0.0.0.0:8080");
  EXPECT_EQ(r.config.clusters(0).endpoints(1).address(), "127.0.0.1:3001");
  EXPECT_EQ(r.config.metrics_address(), "127.0.0.1:9901");
  EXPECT_EQ(r.config.listeners(0).http().max_headers(), 100u);  // default applied
}

// examples/sidecar.yaml (docs/sidecar.md's walkthrough): the issue's config contract, valid.
TEST(Load, SidecarExampleIsValid) {
  LoadResult r = LoadConfigFile("examples/sidecar.yaml");
  ASSERT_TRUE(r.ok()) << Joined(r.errors);
  const auto& s = r.config.sidecar();
  EXPECT_EQ(s.cgroup(), "/sys/fs/cgroup/unified/app");
  EXPECT_EQ(s.outbound_listener(), "outbound");
  EXPECT_EQ(s.inbound_listener(), "inbound");
  ASSERT_EQ(s.inbound_ports_size(), 1);
  EXPECT_EQ(s.inbound_ports(0), 8000u);
  EXPECT_TRUE(s.has_sk_msg() && s.sk_msg());
  EXPECT_TRUE(r.config.listeners(0).original_destination());
  EXPECT_EQ(r.config.clusters(0).type(), zproxy::v1::CLUSTER_TYPE_ORIGINAL_DESTINATION);
}

// DESIGN.md's example is a contract: every key maps; the only complaint is that it refers to
// a cluster "pg" it never defines.
TEST(Load, DesignExampleMapsCleanly) {
  LoadResult r = LoadConfigFile("controlplane/config/testdata/design_example.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << Joined(r.errors);
  EXPECT_EQ(r.errors[0].ToString(),
            "controlplane/config/testdata/design_example.yaml:11:27: "
            "listeners[1].tcp_proxy.cluster: unknown cluster \"pg\"");
  EXPECT_EQ(r.config.clusters(0).lb(), zproxy::v1::ROUND_ROBIN);
  EXPECT_EQ(r.config.clusters(0).endpoints_size(), 2);
  EXPECT_EQ(r.config.clusters(0).health_check().http_path(), "/healthz");
  EXPECT_EQ(r.config.io_uring().buf_size(), 32768u);
}

TEST(Load, ValidationErrorsCarryLineNumbers) {
  LoadResult r = LoadConfigYaml(R"(listeners:
  - name: web
    address: 0.0.0.0:8080
    routes:
      - match: { prefix: / }
        cluster: app
  - name: web
    address: 0.0.0.0:8080
    routes: [ { cluster: nope } ]
clusters:
  - name: app
    endpoints: [ 127.0.0.1:3000, { address: 127.0.0.1:3001, weight: 2000 } ]
)",
                                "c.yaml");
  ASSERT_EQ(r.errors.size(), 4u) << Joined(r.errors);
  EXPECT_EQ(r.errors[0].ToString(),
            "c.yaml:12:69: clusters[0].endpoints[1].weight: weight must be 1..1000, got 2000");
  EXPECT_EQ(r.errors[1].ToString(),
            "c.yaml:7:11: listeners[1].name: duplicate listener name \"web\"");
  EXPECT_EQ(
      r.errors[2].ToString(),
      "c.yaml:8:14: listeners[1].address: address 0.0.0.0:8080 is already used by listeners[0]");
  EXPECT_EQ(r.errors[3].ToString(),
            "c.yaml:9:26: listeners[1].routes[0].cluster: unknown cluster \"nope\"");
}

TEST(Load, MappingErrorsSkipValidation) {
  LoadResult r = LoadConfigYaml("workers: many\n", "c.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << Joined(r.errors);
  EXPECT_EQ(r.errors[0].ToString(),
            "c.yaml:1:10: workers: expected an unsigned integer, got \"many\"");
}

TEST(Load, SyntaxErrorHasPosition) {
  LoadResult r = LoadConfigYaml("listeners: [\n  { name: a\n", "c.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].source, "c.yaml");
  EXPECT_GT(r.errors[0].line, 0);
  EXPECT_NE(r.errors[0].message.find("YAML syntax error"), std::string::npos);
}

TEST(Load, MissingFile) {
  LoadResult r = LoadConfigFile("/nonexistent/zproxy.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].ToString(),
            "/nonexistent/zproxy.yaml: cannot open: No such file or directory");
}

TEST(Load, EmptyDocumentNeedsListeners) {
  LoadResult r = LoadConfigYaml("", "c.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << Joined(r.errors);
  EXPECT_EQ(r.errors[0].ToString(), "c.yaml: listeners: at least one listener is required");
}

}  // namespace
}  // namespace zproxy::config
