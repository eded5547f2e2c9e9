// Original-destination routing (docs/sidecar.md): the config contract's keys from YAML,
// and what validation refuses (each error names its field).
#include <gtest/gtest.h>

#include "controlplane/config/load.h"

namespace zproxy::config {
namespace {

std::string Joined(const ConfigErrors& errors) {
  std::string out;
  for (const auto& e : errors) out += e.ToString() + "\n";
  return out;
}

// The issue's contract, verbatim apart from the tcp_proxy listener.
constexpr const char* kContract = R"(listeners:
  - name: outbound
    address: 127.0.0.1:15001
    original_destination: true
    routes: [ { match: { prefix: / }, cluster: passthrough } ]
  - name: outbound-tcp
    address: 127.0.0.1:15002
    original_destination: true
    tcp_proxy: { cluster: passthrough }
clusters:
  - name: passthrough
    type: original_destination
)";

TEST(ValidateOriginalDst, ContractKeysFromYaml) {
  LoadResult r = LoadConfigYaml(kContract, "c.yaml");
  ASSERT_TRUE(r.ok()) << Joined(r.errors);
  EXPECT_TRUE(r.config.listeners(0).original_destination());
  EXPECT_TRUE(r.config.listeners(1).original_destination());
  EXPECT_EQ(r.config.clusters(0).type(), zproxy::v1::CLUSTER_TYPE_ORIGINAL_DESTINATION);
  EXPECT_EQ(r.config.clusters(0).endpoints_size(), 0);
}

// Expects one error whose text contains `needle` (field path and message).
void ExpectError(const std::string& yaml, const std::string& needle) {
  LoadResult r = LoadConfigYaml(yaml, "c.yaml");
  ASSERT_EQ(r.errors.size(), 1u) << Joined(r.errors);
  EXPECT_NE(Joined(r.errors).find(needle), std::string::npos) << Joined(r.errors);
}

TEST(ValidateOriginalDst, EndpointsMustBeEmpty) {
  ExpectError(std::string(kContract) + "    endpoints: [ 127.0.0.1:3000 ]\n",
              "clusters[0].endpoints: must be empty (type original_destination");
}

TEST(ValidateOriginalDst, NoHealthChecksTlsOrHttp2) {
  ExpectError(std::string(kContract) + "    health_check: { http_path: /h }\n",
              "clusters[0].health_check: not supported");
  ExpectError(std::string(kContract) + "    protocol: http2\n",
              "clusters[0].protocol: http2 is not supported");
}

TEST(ValidateOriginalDst, ListenerMustRecoverTheDestination) {
  ExpectError(R"(listeners:
  - name: web
    address: 127.0.0.1:8080
    routes: [ { match: { prefix: / }, cluster: passthrough } ]
clusters:
  - { name: passthrough, type: original_destination }
)",
              "listeners[0].routes[0].cluster: cluster \"passthrough\" is of type "
              "original_destination: the listener needs original_destination: true");
  ExpectError(R"(listeners:
  - name: l4
    address: 127.0.0.1:8080
    tcp_proxy: { cluster: passthrough }
clusters:
  - { name: passthrough, type: original_destination }
)",
              "listeners[0].tcp_proxy.cluster: cluster \"passthrough\"");
}

TEST(ValidateOriginalDst, StaticClustersStillNeedEndpoints) {
  ExpectError(R"(listeners:
  - name: web
    address: 127.0.0.1:8080
    original_destination: true
    routes: [ { match: { prefix: / }, cluster: app } ]
clusters:
  - { name: app, type: static }
)",
              "clusters[0].endpoints: at least one endpoint is required");
}

TEST(ValidateOriginalDst, SidecarContractKeysFromYaml) {
  LoadResult r = LoadConfigYaml(std::string(kContract) + R"(sidecar:
  cgroup: /sys/fs/cgroup/unified/app
  outbound_listener: outbound
  inbound_listener: inbound
  inbound_ports: [8000]
  exclude_ports: [22]
  exclude_cidrs: [ 10.0.0.0/8, "fd00::/8" ]
  sk_msg: true
)",
                                "c.yaml");
  ASSERT_TRUE(r.ok()) << Joined(r.errors);
  const auto& s = r.config.sidecar();
  EXPECT_EQ(s.cgroup(), "/sys/fs/cgroup/unified/app");
  EXPECT_EQ(s.outbound_listener(), "outbound");
  EXPECT_EQ(s.exclude_ports(0), 22u);
  EXPECT_EQ(s.exclude_cidrs(1), "fd00::/8");
  EXPECT_TRUE(s.sk_msg());
}

TEST(ValidateOriginalDst, SidecarErrorsNameTheField) {
  ExpectError(std::string(kContract) + "sidecar: { cgroup: app, outbound_listener: outbound }\n",
              "sidecar.cgroup: must be an absolute path");
  ExpectError(std::string(kContract) + "sidecar: { cgroup: /a, outbound_listener: nope }\n",
              "sidecar.outbound_listener: unknown listener \"nope\"");
  ExpectError(std::string(kContract) +
                  "sidecar: { cgroup: /a, outbound_listener: outbound, exclude_ports: [0] }\n",
              "sidecar.exclude_ports[0]: must be a port");
  ExpectError(std::string(kContract) +
                  "sidecar: { cgroup: /a, outbound_listener: outbound, exclude_cidrs: [10/8] }\n",
              "sidecar.exclude_cidrs[0]: invalid CIDR");
}

TEST(ValidateOriginalDst, InboundOnlySidecar) {
  // sk_lookup needs no cgroup: inbound_listener alone is a complete sidecar.
  LoadResult r = LoadConfigYaml(
      std::string(kContract) + "sidecar: { inbound_listener: outbound, inbound_ports: [8000] }\n",
      "c.yaml");
  ASSERT_TRUE(r.ok()) << Joined(r.errors);
  EXPECT_EQ(r.config.sidecar().inbound_ports(0), 8000u);
  ExpectError(std::string(kContract) + "sidecar: { inbound_listener: outbound }\n",
              "sidecar.inbound_ports: is required with inbound_listener");
  ExpectError(
      std::string(kContract) + "sidecar: { inbound_listener: outbound, inbound_ports: [70000] }\n",
      "sidecar.inbound_ports[0]: must be a port");
  LoadResult orphan =
      LoadConfigYaml(std::string(kContract) + "sidecar: { inbound_ports: [8000] }\n", "c.yaml");
  EXPECT_NE(Joined(orphan.errors).find("sidecar.inbound_ports: needs sidecar.inbound_listener"),
            std::string::npos)
      << Joined(orphan.errors);
  // Half an outbound setup is still refused.
  ExpectError(std::string(kContract) +
                  "sidecar: { outbound_listener: outbound, inbound_listener: outbound, "
                  "inbound_ports: [8000] }\n",
              "sidecar.cgroup: must be an absolute path");
}

}  // namespace
}  // namespace zproxy::config
