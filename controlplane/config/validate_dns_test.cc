// Host-name endpoints and the dns blocks: names are checked for form, never looked up.
#include <gtest/gtest.h>

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

void ExpectOne(const Config& c, const std::string& path, const std::string& needle) {
  ConfigErrors errors = ValidateConfig(c);
  ASSERT_EQ(errors.size(), 1u) << Joined(errors);
  EXPECT_EQ(errors[0].field_path, path);
  EXPECT_NE(errors[0].message.find(needle), std::string::npos) << errors[0].message;
}

TEST(ValidateDns, HostNameEndpointsAreAcceptedWithoutALookup) {
  Config c = testing::MinimalConfig();
  auto* eps = c.mutable_clusters(0)->mutable_endpoints();
  for (const char* a : {"api.does-not-exist.invalid:8080",  // NXDOMAIN today: still valid
                        "svc.ns.svc.cluster.local.:80", "_grpc.backend:9000"}) {
    auto* e = eps->Add();
    e->set_address(a);
    e->set_weight(1);
  }
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
}

TEST(ValidateDns, MalformedHostNamesAreRefused) {
  Config c = testing::MinimalConfig();
  c.mutable_clusters(0)->mutable_endpoints(0)->set_address("bad host:80");
  ExpectOne(c, "clusters[0].endpoints[0].address", "invalid character ' '");
  c.mutable_clusters(0)->mutable_endpoints(0)->set_address("a..b:80");
  ExpectOne(c, "clusters[0].endpoints[0].address", "1..63");
  c.mutable_clusters(0)->mutable_endpoints(0)->set_address("-a.b:80");
  ExpectOne(c, "clusters[0].endpoints[0].address", "invalid character '-'");
  c.mutable_clusters(0)->mutable_endpoints(0)->set_address("api.internal");
  ExpectOne(c, "clusters[0].endpoints[0].address", "missing port");
}

TEST(ValidateDns, ResolvedFromIsZproxydsOnly) {
  Config c = testing::MinimalConfig();
  c.mutable_clusters(0)->mutable_endpoints(0)->set_resolved_from("x:1");
  ExpectOne(c, "clusters[0].endpoints[0].resolved_from", "set by zproxyd");
}

TEST(ValidateDns, DnsBlocks) {
  Config c = testing::MinimalConfig();
  c.mutable_dns()->add_resolvers("127.0.0.1:5353");
  c.mutable_dns()->add_resolvers("10.0.0.53");
  c.mutable_dns()->add_resolvers("[::1]:53");
  c.mutable_dns()->set_family("v4");
  EXPECT_TRUE(ValidateConfig(c).empty()) << Joined(ValidateConfig(c));
  c.mutable_dns()->add_resolvers("dns.example:53");
  ExpectOne(c, "dns.resolvers[3]", "IP address");
  c.mutable_dns()->mutable_resolvers()->RemoveLast();
  c.mutable_dns()->set_family("ipv4");
  ExpectOne(c, "dns.family", "any, v4 or v6");
  c.mutable_dns()->set_family("");
  c.mutable_dns()->set_min_refresh_ms(5000);
  c.mutable_dns()->set_max_refresh_ms(1000);
  ExpectOne(c, "dns.min_refresh_ms", "must not exceed max_refresh_ms");
  c.mutable_dns()->clear_min_refresh_ms();
  c.mutable_clusters(0)->mutable_dns()->add_resolvers("127.0.0.1");
  ExpectOne(c, "clusters[0].dns.resolvers", "top-level");
  c.mutable_clusters(0)->mutable_dns()->clear_resolvers();
  c.mutable_clusters(0)->mutable_dns()->set_timeout_ms(10);
  ExpectOne(c, "clusters[0].dns.timeout_ms", "top-level");
}

}  // namespace
}  // namespace zproxy::config
