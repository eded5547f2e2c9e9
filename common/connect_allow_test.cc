#include "common/connect_allow.h"

#include <gtest/gtest.h>

#include <vector>

namespace zproxy {
namespace {

ConnectAllowRule Rule(std::string_view text) {
  ConnectAllowRule r;
  std::string err;
  EXPECT_TRUE(ParseConnectAllowRule(text, &r, &err)) << text << ": " << err;
  return r;
}

bool Allowed(const std::vector<ConnectAllowRule>& rules, std::string_view target) {
  NetAddress a;
  EXPECT_EQ(ParseConnectTarget(target, &a), ConnectTargetError::kNone) << target;
  return ConnectAllowed(rules, a);
}

TEST(ConnectAllow, ExactCidrAndAnyPort) {
  std::vector<ConnectAllowRule> rules = {Rule("10.0.0.5:22"), Rule("127.0.0.1:*"),
                                         Rule("192.168.1.0/24:443"), Rule("[::1]:8080"),
                                         Rule("[2001:db8::/32]:*")};
  EXPECT_TRUE(Allowed(rules, "10.0.0.5:22"));
  EXPECT_FALSE(Allowed(rules, "10.0.0.5:23"));
  EXPECT_FALSE(Allowed(rules, "10.0.0.6:22"));
  EXPECT_TRUE(Allowed(rules, "127.0.0.1:1"));
  EXPECT_TRUE(Allowed(rules, "127.0.0.1:65535"));
  EXPECT_TRUE(Allowed(rules, "192.168.1.200:443"));
  EXPECT_FALSE(Allowed(rules, "192.168.2.1:443"));
  EXPECT_TRUE(Allowed(rules, "[::1]:8080"));
  EXPECT_FALSE(Allowed(rules, "[::1]:8081"));
  EXPECT_TRUE(Allowed(rules, "[2001:db8:ffff::1]:9"));
  EXPECT_FALSE(Allowed(rules, "[2001:db9::1]:9"));
  EXPECT_FALSE(Allowed({}, "127.0.0.1:80"));
}

TEST(ConnectAllow, OddPrefixLengths) {
  std::vector<ConnectAllowRule> rules = {Rule("10.0.0.128/25:80")};
  EXPECT_TRUE(Allowed(rules, "10.0.0.200:80"));
  EXPECT_FALSE(Allowed(rules, "10.0.0.127:80"));
  EXPECT_TRUE(Allowed({Rule("0.0.0.0/0:80")}, "8.8.8.8:80"));
}

TEST(ConnectAllow, BadRulesSayWhy) {
  ConnectAllowRule r;
  std::string err;
  EXPECT_FALSE(ParseConnectAllowRule("10.0.0.300:443", &r, &err));
  EXPECT_NE(err.find("not an IP literal"), std::string::npos) << err;
  EXPECT_FALSE(ParseConnectAllowRule("10.0.0.1", &r, &err));
  EXPECT_NE(err.find("expected IP"), std::string::npos) << err;
  EXPECT_FALSE(ParseConnectAllowRule("10.0.0.1:0", &r, &err));
  EXPECT_FALSE(ParseConnectAllowRule("10.0.0.1:70000", &r, &err));
  EXPECT_FALSE(ParseConnectAllowRule("10.0.0.0/33:80", &r, &err));
  EXPECT_NE(err.find("prefix length"), std::string::npos) << err;
  EXPECT_FALSE(ParseConnectAllowRule("::1:80", &r, &err));
}

TEST(ConnectAllow, BadNamePatternsSayWhy) {
  ConnectAllowRule r;
  std::string err;
  for (const char* bad : {"*:443", "*.:443", "a*.example.com:443", "*.*.example.com:1",
                          "ex ample.com:443", "-bad.example.com:1", "bad-.example.com:1", "a..b:1",
                          "127.1:80", "0x7f.0.0.1:80", "host:0", "host:"}) {
    EXPECT_FALSE(ParseConnectAllowRule(bad, &r, &err)) << bad;
    EXPECT_FALSE(err.empty()) << bad;
  }
  EXPECT_FALSE(ParseConnectAllowRule("*:443", &r, &err));
  EXPECT_NE(err.find("wildcard"), std::string::npos) << err;
  EXPECT_FALSE(ParseConnectAllowRule(std::string(64, 'a') + ".com:1", &r, &err));
  EXPECT_NE(err.find("63"), std::string::npos) << err;
  EXPECT_FALSE(ParseConnectAllowRule("ex ample.com:443", &r, &err));
  EXPECT_NE(err.find("not an IP literal, CIDR or host name"), std::string::npos) << err;
}

ConnectName Name(std::string_view target) {
  NetAddress unused;
  ConnectName n;
  EXPECT_EQ(ParseConnectTarget(target, &unused, &n), ConnectTargetError::kHostname) << target;
  return n;
}

TEST(ConnectAllow, NamePatterns) {
  std::vector<ConnectAllowRule> rules = {Rule("api.internal:443"), Rule("LocalHost:*"),
                                         Rule("*.svc.cluster.local:443"), Rule("db.internal.:5432"),
                                         Rule("10.0.0.0/8:*")};
  EXPECT_EQ(rules[0].kind, ConnectAllowRule::Kind::kName);
  EXPECT_EQ(rules[1].name, "localhost");
  EXPECT_EQ(rules[2].name, ".svc.cluster.local");
  EXPECT_TRUE(rules[2].wildcard);
  EXPECT_EQ(rules[3].name, "db.internal");
  EXPECT_TRUE(ConnectNameAllowed(rules, Name("api.internal:443")));
  EXPECT_TRUE(ConnectNameAllowed(rules, Name("API.Internal.:443")));  // case, trailing dot
  EXPECT_FALSE(ConnectNameAllowed(rules, Name("api.internal:444")));
  EXPECT_FALSE(ConnectNameAllowed(rules, Name("xapi.internal:443")));
  EXPECT_FALSE(ConnectNameAllowed(rules, Name("a.api.internal:443")));
  EXPECT_TRUE(ConnectNameAllowed(rules, Name("localhost:1")));
  EXPECT_TRUE(ConnectNameAllowed(rules, Name("LOCALHOST:65535")));
  EXPECT_TRUE(ConnectNameAllowed(rules, Name("web.ns.svc.cluster.local:443")));
  EXPECT_TRUE(ConnectNameAllowed(rules, Name("a.b.c.svc.cluster.local:443")));
  EXPECT_FALSE(ConnectNameAllowed(rules, Name("svc.cluster.local:443")));  // suffix itself
  EXPECT_FALSE(ConnectNameAllowed(rules, Name("evilsvc.cluster.local:443")));
  EXPECT_FALSE(ConnectNameAllowed(rules, Name("web.ns.svc.cluster.local:80")));
  EXPECT_TRUE(ConnectNameAllowed(rules, Name("db.internal:5432")));
  // IP patterns never match names and name patterns never match addresses.
  EXPECT_FALSE(ConnectNameAllowed(std::vector{Rule("127.0.0.1:*")}, Name("localhost:80")));
  EXPECT_FALSE(Allowed({Rule("localhost:*")}, "127.0.0.1:80"));
  EXPECT_TRUE(Allowed(rules, "10.1.2.3:80"));
}

TEST(ConnectAllow, IpRulesForPort) {
  std::vector<ConnectAllowRule> rules = {Rule("localhost:*"), Rule("10.0.0.0/8:443")};
  EXPECT_TRUE(ConnectIpRulesForPort(rules, 443));
  EXPECT_FALSE(ConnectIpRulesForPort(rules, 80));  // a name on :80 is denied without a lookup
  EXPECT_TRUE(ConnectIpRulesForPort(std::vector{Rule("127.0.0.1:*")}, 80));
  EXPECT_FALSE(ConnectIpRulesForPort(std::vector<ConnectAllowRule>{}, 80));
}

TEST(ConnectAllow, NameTargets) {
  ConnectName n = Name("Api.Example.COM.:8443");
  EXPECT_EQ(n.view(), "api.example.com");
  EXPECT_EQ(n.port, 8443);
  EXPECT_EQ(n.host[n.len], '\0');
  NetAddress a;
  // Numbers that are not dotted quads, bad labels and over-long names are malformed.
  for (const char* bad : {"127.1:80", "0x7f.0.0.1:80", "2130706433:80", "a..b:80", "-a.b:80",
                          "a_b c:80", "exa*mple.com:80", "a..:80", "a.b..:80", ".:80"}) {
    EXPECT_EQ(ParseConnectTarget(bad, &a), ConnectTargetError::kMalformed) << bad;
  }
  std::string long_name;
  for (int i = 0; i < 5; i++) long_name += std::string(60, 'a') + ".";
  EXPECT_EQ(ParseConnectTarget(long_name + "com:80", &a), ConnectTargetError::kMalformed);
  EXPECT_EQ(ParseConnectTarget("_svc.example.com:80", &a), ConnectTargetError::kHostname);
}

TEST(ConnectAllow, Targets) {
  NetAddress a;
  EXPECT_EQ(ParseConnectTarget("example.com:443", &a), ConnectTargetError::kHostname);
  EXPECT_EQ(ParseConnectTarget("localhost:22", &a), ConnectTargetError::kHostname);
  EXPECT_EQ(ParseConnectTarget("10.0.0.1", &a), ConnectTargetError::kMalformed);
  EXPECT_EQ(ParseConnectTarget("10.0.0.1:", &a), ConnectTargetError::kMalformed);
  EXPECT_EQ(ParseConnectTarget("10.0.0.1:0", &a), ConnectTargetError::kMalformed);
  EXPECT_EQ(ParseConnectTarget(":80", &a), ConnectTargetError::kMalformed);
  EXPECT_EQ(ParseConnectTarget("[nonsense]:80", &a), ConnectTargetError::kMalformed);
  ASSERT_EQ(ParseConnectTarget("[::1]:22", &a), ConnectTargetError::kNone);
  EXPECT_EQ(a.ToString(), "[::1]:22");
  ASSERT_EQ(ParseConnectTarget("10.1.2.3:443", &a), ConnectTargetError::kNone);
  EXPECT_EQ(a.ToString(), "10.1.2.3:443");
}

}  // namespace
}  // namespace zproxy
