#include "dataplane/routing/host_pattern.h"

#include <string>

#include "gtest/gtest.h"

namespace zproxy::routing {
namespace {

HostPattern MustCompile(std::string_view text) {
  HostPattern p;
  std::string error;
  EXPECT_TRUE(HostPattern::Compile(text, &p, &error)) << text << ": " << error;
  return p;
}

bool Matches(std::string_view pattern, std::string_view host) {
  return MustCompile(pattern).Matches(NormalizedHost(host));
}

TEST(NormalizedHostTest, StripsPortLowercasesAndDropsTrailingDot) {
  EXPECT_EQ(NormalizedHost("Example.COM:8080").view(), "example.com");
  EXPECT_EQ(NormalizedHost("example.com.").view(), "example.com");
  EXPECT_EQ(NormalizedHost("example.com.:80").view(), "example.com");
  EXPECT_EQ(NormalizedHost("[::1]:80").view(), "[::1]");
  EXPECT_EQ(NormalizedHost("[FE80::1]").view(), "[fe80::1]");
  EXPECT_EQ(NormalizedHost("10.0.0.1:443").view(), "10.0.0.1");
  EXPECT_EQ(NormalizedHost("").view(), "");
}

TEST(NormalizedHostTest, TooLongIsInvalid) {
  EXPECT_TRUE(NormalizedHost(std::string(kMaxHostLength, 'a')).valid());
  EXPECT_FALSE(NormalizedHost(std::string(kMaxHostLength + 1, 'a')).valid());
}

TEST(HostPatternTest, Exact) {
  EXPECT_TRUE(Matches("example.com", "example.com"));
  EXPECT_TRUE(Matches("Example.Com", "EXAMPLE.com:8080"));
  EXPECT_TRUE(Matches("example.com", "example.com."));
  EXPECT_FALSE(Matches("example.com", "a.example.com"));
  EXPECT_FALSE(Matches("example.com", "example.co"));
  EXPECT_FALSE(Matches("example.com", "example.com.evil"));
  EXPECT_FALSE(Matches("example.com", ""));
}

TEST(HostPatternTest, Ipv6Literal) {
  EXPECT_TRUE(Matches("[::1]", "[::1]:80"));
  EXPECT_TRUE(Matches("[::1]", "[::1]"));
  EXPECT_TRUE(Matches("[FE80::1]", "[fe80::1]:8443"));
  EXPECT_FALSE(Matches("[::1]", "[::2]:80"));
  EXPECT_FALSE(Matches("[::1]", "[::1"));  // malformed request value: no match
}

TEST(HostPatternTest, WildcardMatchesAnyDepthButNotTheApex) {
  EXPECT_TRUE(Matches("*.example.com", "a.example.com"));
  EXPECT_TRUE(Matches("*.example.com", "a.b.example.com"));
  EXPECT_TRUE(Matches("*.example.com", "A.Example.COM:8080"));
  EXPECT_FALSE(Matches("*.example.com", "example.com"));
  EXPECT_FALSE(Matches("*.example.com", ".example.com"));
  EXPECT_FALSE(Matches("*.example.com", "badexample.com"));
  EXPECT_FALSE(Matches("*.example.com", "a.example.org"));
  EXPECT_TRUE(MustCompile("*.example.com").wildcard());
  EXPECT_EQ(MustCompile("*.Example.com").key(), ".example.com");
}

TEST(HostPatternTest, RejectsBadPatterns) {
  for (const char* bad : {"", "*", "*.", "a.*.com", "*example.com", "example.com:80", "[::1]:80",
                          "*.[::1]", "[zz]", "a..b", ".a", "exa mple.com", "ex/ample"}) {
    HostPattern p;
    std::string error;
    EXPECT_FALSE(HostPattern::Compile(bad, &p, &error)) << "accepted \"" << bad << "\"";
    EXPECT_FALSE(error.empty()) << bad;
  }
}

}  // namespace
}  // namespace zproxy::routing
