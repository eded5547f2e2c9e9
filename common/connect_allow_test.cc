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
  EXPECT_FALSE(ParseConnectAllowRule("example.com:443", &r, &err));
  EXPECT_NE(err.find("not an IP literal"), std::string::npos) << err;
  EXPECT_FALSE(ParseConnectAllowRule("10.0.0.1", &r, &err));
  EXPECT_NE(err.find("expected IP"), std::string::npos) << err;
  EXPECT_FALSE(ParseConnectAllowRule("10.0.0.1:0", &r, &err));
  EXPECT_FALSE(ParseConnectAllowRule("10.0.0.1:70000", &r, &err));
  EXPECT_FALSE(ParseConnectAllowRule("10.0.0.0/33:80", &r, &err));
  EXPECT_NE(err.find("prefix length"), std::string::npos) << err;
  EXPECT_FALSE(ParseConnectAllowRule("::1:80", &r, &err));
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
