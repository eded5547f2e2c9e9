// Validation of tcp_proxy.sni_routes (TLS pass-through routed by SNI), and the YAML keys of
// the config contract mapping onto the schema. Apart from validate_test.cc so that the
// route policy's tests and these change separate files.
#include <gtest/gtest.h>

#include "controlplane/config/defaults.h"
#include "controlplane/config/load.h"
#include "controlplane/config/testing/minimal_config.h"
#include "controlplane/config/validate.h"

namespace zproxy::config {
namespace {

using zproxy::v1::Config;

// A tcp_proxy listener "tls-pass" (default cluster "app") with one SNI entry to "a-tls".
Config SniBase() {
  Config c = testing::MinimalConfig();
  auto* cl = c.add_clusters();
  cl->set_name("a-tls");
  cl->add_endpoints()->set_address("127.0.0.1:3001");
  auto* l = c.add_listeners();
  l->set_name("tls-pass");
  l->set_address("127.0.0.1:8443");
  auto* t = l->mutable_tcp_proxy();
  t->set_cluster("app");
  auto* r = t->add_sni_routes();
  r->add_server_names("a.example.com");
  r->add_server_names("*.b.example.com");
  r->set_cluster("a-tls");
  ApplyDefaults(&c);
  return c;
}

std::string Joined(const ConfigErrors& errors) {
  std::string out;
  for (const auto& e : errors) out += e.ToString() + "\n";
  return out;
}

void ExpectOne(const Config& c, const std::string& path, const std::string& needle) {
  ConfigErrors errors = ValidateConfig(c);
  ASSERT_EQ(errors.size(), 1u) << Joined(errors);
  EXPECT_EQ(errors[0].field_path, path);
  EXPECT_NE(errors[0].message.find(needle), std::string::npos) << errors[0].message;
}

zproxy::v1::SniRoute* Route(Config& c, int i) {
  return c.mutable_listeners(1)->mutable_tcp_proxy()->mutable_sni_routes(i);
}

TEST(ValidateSni, BaseIsValidAndGetsTheHelloTimeout) {
  Config c = SniBase();
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
  EXPECT_EQ(c.listeners(1).tcp_proxy().client_hello_timeout_ms(), Defaults::kClientHelloTimeoutMs);
}

TEST(ValidateSni, UnknownCluster) {
  Config c = SniBase();
  Route(c, 0)->set_cluster("nope");
  ExpectOne(c, "listeners[1].tcp_proxy.sni_routes[0].cluster", "unknown cluster \"nope\"");
  Route(c, 0)->clear_cluster();
  ExpectOne(c, "listeners[1].tcp_proxy.sni_routes[0].cluster", "cluster is required");
}

TEST(ValidateSni, BadServerNames) {
  const char* path = "listeners[1].tcp_proxy.sni_routes[0].server_names[1]";
  for (const char* bad : {"a.*.example.com", "*", "*example.com", "a..example.com", "a_b.example",
                          "bad host", "a.example.com.", ""}) {
    Config c = SniBase();
    Route(c, 0)->set_server_names(1, bad);
    ExpectOne(c, path, "invalid server name");
  }
  for (const char* ip : {"127.0.0.1", "[::1]", "::1"}) {
    Config c = SniBase();
    Route(c, 0)->set_server_names(1, ip);
    ExpectOne(c, path, "never IP addresses");
  }
}

TEST(ValidateSni, DuplicateNames) {
  Config c = SniBase();
  Route(c, 0)->add_server_names("A.Example.com");
  ExpectOne(c, "listeners[1].tcp_proxy.sni_routes[0].server_names[2]",
            "duplicate server name \"a.example.com\" (already in "
            "listeners[1].tcp_proxy.sni_routes[0].server_names[0])");
  c = SniBase();
  auto* r = c.mutable_listeners(1)->mutable_tcp_proxy()->add_sni_routes();
  r->add_server_names("*.b.example.com");
  r->set_cluster("app");
  ExpectOne(c, "listeners[1].tcp_proxy.sni_routes[1].server_names[0]",
            "duplicate server name \"*.b.example.com\"");
  // The same name with an alpn is another entry: it narrows the first.
  r->add_alpn("h2");
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
  auto* r2 = c.mutable_listeners(1)->mutable_tcp_proxy()->add_sni_routes();
  *r2 = *r;
  ExpectOne(c, "listeners[1].tcp_proxy.sni_routes[2].server_names[0]", "with the same alpn");
}

TEST(ValidateSni, AlpnAndNamelessEntries) {
  Config c = SniBase();
  Route(c, 0)->add_alpn("h2");
  Route(c, 0)->add_alpn("h2");
  ExpectOne(c, "listeners[1].tcp_proxy.sni_routes[0].alpn[1]", "duplicate protocol \"h2\"");
  Route(c, 0)->set_alpn(1, "");
  ExpectOne(c, "listeners[1].tcp_proxy.sni_routes[0].alpn[1]", "1..255 bytes");
  c = SniBase();
  Route(c, 0)->clear_server_names();
  ExpectOne(c, "listeners[1].tcp_proxy.sni_routes[0].server_names", "at least one server name");
  Route(c, 0)->add_alpn("h2");  // any name offering h2
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
}

TEST(ValidateSni, ContractKeysFromYaml) {
  LoadResult r = LoadConfigYaml(R"(listeners:
  - name: tls-pass
    address: 0.0.0.0:8443
    tcp_proxy:
      cluster: default-tls
      client_hello_timeout_ms: 2500
      sni_routes:
        - { server_names: [ a.example.com, "*.b.example.com" ], cluster: a-tls }
        - { server_names: [ h2.example.com ], alpn: [ h2 ], cluster: a-tls }
clusters:
  - { name: default-tls, endpoints: [ 127.0.0.1:9443 ] }
  - { name: a-tls, endpoints: [ 127.0.0.1:9444 ] }
)",
                                "c.yaml");
  ASSERT_TRUE(r.ok()) << Joined(r.errors);
  const auto& t = r.config.listeners(0).tcp_proxy();
  ASSERT_EQ(t.sni_routes_size(), 2);
  EXPECT_EQ(t.sni_routes(0).server_names(1), "*.b.example.com");
  EXPECT_EQ(t.sni_routes(0).cluster(), "a-tls");
  EXPECT_EQ(t.sni_routes(1).alpn(0), "h2");
  EXPECT_EQ(t.client_hello_timeout_ms(), 2500u);
}

TEST(ValidateSni, YamlErrorsNameTheLine) {
  LoadResult r = LoadConfigYaml(R"(listeners:
  - name: tls-pass
    address: 0.0.0.0:8443
    tcp_proxy:
      cluster: default-tls
      sni_routes:
        - { server_names: [ a.example.com ], cluster: nope }
clusters:
  - { name: default-tls, endpoints: [ 127.0.0.1:9443 ] }
)",
                                "c.yaml");
  ASSERT_FALSE(r.ok());
  std::string all = Joined(r.errors);
  EXPECT_NE(all.find("c.yaml:7:"), std::string::npos) << all;
  EXPECT_NE(all.find("listeners[0].tcp_proxy.sni_routes[0].cluster: unknown cluster \"nope\""),
            std::string::npos)
      << all;
}

}  // namespace
}  // namespace zproxy::config
