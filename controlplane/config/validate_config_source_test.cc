// config_source and node: the YAML contract of issue 16 (keys relied on outside the
// repository) and the checks that name each bad field.
#include <gtest/gtest.h>

#include "controlplane/config/load.h"
#include "controlplane/config/testing/minimal_config.h"
#include "controlplane/config/validate.h"

namespace zproxy::config {
namespace {

using zproxy::v1::Config;

std::string Joined(const ConfigErrors& errors) {
  std::string out;
  for (const auto& e : errors) out += e.ToString() + "\n";
  return out;
}

TEST(ConfigSource, TheContractKeysLoad) {
  LoadResult r = LoadConfigYaml(R"(
listeners:
  - name: web
    address: 127.0.0.1:8080
    routes: [ { match: { prefix: / }, cluster: app } ]
clusters:
  - name: app
    endpoints: [ 127.0.0.1:3000 ]
config_source:
  etcd:
    endpoints: [ https://127.0.0.1:2379 ]
    prefix: /zproxy/fleet-a/
    tls: { ca: /etc/ca.pem, cert: /etc/c.pem, key: /etc/c.key }
    dial_timeout_ms: 2000
node:
  name: node-a
  listener_addresses: { web: 127.0.0.1:18001 }
)",
                                "fleet.yaml");
  ASSERT_TRUE(r.ok()) << Joined(r.errors);
  const auto& e = r.config.config_source().etcd();
  EXPECT_EQ(e.endpoints(0), "https://127.0.0.1:2379");
  EXPECT_EQ(e.prefix(), "/zproxy/fleet-a/");
  EXPECT_EQ(e.tls().cert(), "/etc/c.pem");
  EXPECT_EQ(e.dial_timeout_ms(), 2000u);
  EXPECT_EQ(r.config.node().name(), "node-a");
  EXPECT_EQ(r.config.node().listener_addresses().at("web"), "127.0.0.1:18001");
}

Config WithEtcd() {
  Config c = testing::MinimalConfig();
  auto* e = c.mutable_config_source()->mutable_etcd();
  e->add_endpoints("http://127.0.0.1:2379");
  e->set_prefix("/zproxy/a/");
  return c;
}

void ExpectError(const Config& c, const std::string& path, const std::string& needle) {
  ConfigErrors errors = ValidateConfig(c);
  for (const auto& e : errors) {
    if (e.field_path == path && e.message.find(needle) != std::string::npos) return;
  }
  ADD_FAILURE() << "no error at " << path << " containing " << needle << "; got:\n"
                << Joined(errors);
}

TEST(ConfigSource, ValidIsValid) { EXPECT_TRUE(ValidateConfig(WithEtcd()).empty()); }

TEST(ConfigSource, EachBadFieldIsNamed) {
  Config c = WithEtcd();
  c.mutable_config_source()->mutable_etcd()->clear_endpoints();
  ExpectError(c, "config_source.etcd.endpoints", "at least one");

  c = WithEtcd();
  c.mutable_config_source()->mutable_etcd()->set_endpoints(0, "127.0.0.1:2379");
  ExpectError(c, "config_source.etcd.endpoints[0]", "http:// or https://");

  c = WithEtcd();
  c.mutable_config_source()->mutable_etcd()->clear_prefix();
  ExpectError(c, "config_source.etcd.prefix", "required");

  c = WithEtcd();
  c.mutable_config_source()->mutable_etcd()->mutable_tls()->set_cert("/c.pem");
  ExpectError(c, "config_source.etcd.tls", "cert and key");

  c = WithEtcd();
  (*c.mutable_node()->mutable_listener_addresses())["web"] = "nowhere";
  ExpectError(c, "node.listener_addresses.web", "invalid address");

  c = testing::MinimalConfig();
  (*c.mutable_node()->mutable_listener_addresses())["web"] = "127.0.0.1:1";
  ExpectError(c, "node.listener_addresses", "only meaningful with config_source");
}

}  // namespace
}  // namespace zproxy::config
