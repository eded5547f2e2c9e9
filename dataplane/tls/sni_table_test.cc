#include "dataplane/tls/sni_table.h"

#include <gtest/gtest.h>

namespace zproxy::tls {
namespace {

std::vector<uint32_t> Lookup(const SniTable& t, std::string_view name) {
  const auto* v = t.Find(name);
  return v == nullptr ? std::vector<uint32_t>{} : *v;
}

TEST(SniTable, ExactMatchIsCaseInsensitive) {
  SniTable t;
  t.Add("www.Example.com", 0);
  EXPECT_EQ(Lookup(t, "www.example.com"), std::vector<uint32_t>{0});
  EXPECT_EQ(Lookup(t, "WWW.EXAMPLE.COM"), std::vector<uint32_t>{0});
  EXPECT_EQ(Lookup(t, "www.example.com."), std::vector<uint32_t>{0});
  EXPECT_TRUE(Lookup(t, "example.com").empty());
  EXPECT_TRUE(Lookup(t, "").empty());
}

TEST(SniTable, WildcardCoversExactlyOneLabel) {
  SniTable t;
  t.Add("*.example.com", 3);
  EXPECT_EQ(Lookup(t, "a.example.com"), std::vector<uint32_t>{3});
  EXPECT_EQ(Lookup(t, "B.Example.Com"), std::vector<uint32_t>{3});
  EXPECT_TRUE(Lookup(t, "example.com").empty());
  EXPECT_TRUE(Lookup(t, "a.b.example.com").empty());
  EXPECT_TRUE(Lookup(t, ".example.com").empty());
  EXPECT_TRUE(Lookup(t, "aexample.com").empty());
}

TEST(SniTable, ExactBeatsWildcard) {
  SniTable t;
  t.Add("*.example.com", 1);
  t.Add("api.example.com", 2);
  EXPECT_EQ(Lookup(t, "api.example.com"), std::vector<uint32_t>{2});
  EXPECT_EQ(Lookup(t, "www.example.com"), std::vector<uint32_t>{1});
}

TEST(SniTable, SeveralCertificatesPerNameKeepOrder) {
  SniTable t;
  t.Add("example.com", 0);  // e.g. ECDSA
  t.Add("example.com", 4);  // RSA
  t.Add("EXAMPLE.com", 0);  // the same certificate twice (SAN and CN): listed once
  EXPECT_EQ(Lookup(t, "example.com"), (std::vector<uint32_t>{0, 4}));
}

TEST(SniTable, RejectsMisplacedWildcards) {
  SniTable t;
  EXPECT_FALSE(t.Add("a.*.example.com", 0));
  EXPECT_FALSE(t.Add("*example.com", 0));
  EXPECT_FALSE(t.Add("*.*.example.com", 0));
  EXPECT_FALSE(t.Add("", 0));
  EXPECT_TRUE(Lookup(t, "a.b.example.com").empty());
}

}  // namespace
}  // namespace zproxy::tls
