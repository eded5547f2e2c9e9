#include "dataplane/tunnel/sni_router.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace zproxy::tunnel {
namespace {

struct Route {
  std::vector<std::string> names;
  std::vector<std::string> alpn;
  std::string cluster;
};

zproxy::v1::Config MakeConfig(const std::vector<Route>& routes) {
  zproxy::v1::Config c;
  for (const char* name : {"default-tls", "a-tls", "b-tls", "h2-tls", "any-h2"}) {
    c.add_clusters()->set_name(name);
  }
  auto* t = c.add_listeners()->mutable_tcp_proxy();
  t->set_cluster("default-tls");
  for (const auto& r : routes) {
    auto* e = t->add_sni_routes();
    for (const auto& n : r.names) e->add_server_names(n);
    for (const auto& a : r.alpn) e->add_alpn(a);
    e->set_cluster(r.cluster);
  }
  return c;
}

std::string AlpnList(const std::vector<std::string>& protos) {
  std::string list;
  for (const auto& p : protos) list += static_cast<char>(p.size()) + p;
  return list;
}

class SniRouterTest : public ::testing::Test {
 protected:
  void Build(const std::vector<Route>& routes) {
    config_ = MakeConfig(routes);
    std::string error;
    router_ = SniRouter::Build(config_, config_.listeners(0).tcp_proxy(), "listeners[0].tcp_proxy",
                               &error);
    ASSERT_NE(router_, nullptr) << error;
  }
  // The cluster name a ClientHello with this SNI and ALPN list gets.
  std::string Pick(std::string_view sni, const std::vector<std::string>& alpn = {}) {
    std::string list = AlpnList(alpn);
    ClientHelloInfo hello{sni, list};
    return config_.clusters(router_->cluster(router_->Pick(hello))).name();
  }

  zproxy::v1::Config config_;
  std::unique_ptr<SniRouter> router_;
};

TEST_F(SniRouterTest, ExactWildcardDefault) {
  Build({{{"a.example.com", "*.b.example.com"}, {}, "a-tls"}});
  EXPECT_EQ(Pick("a.example.com"), "a-tls");
  EXPECT_EQ(Pick("A.Example.COM."), "a-tls");  // case, trailing dot
  EXPECT_EQ(Pick("x.b.example.com"), "a-tls");
  EXPECT_EQ(Pick("y.x.b.example.com"), "a-tls");  // any depth, as route hosts
  EXPECT_EQ(Pick("b.example.com"), "default-tls");
  EXPECT_EQ(Pick("xb.example.com"), "default-tls");
  EXPECT_EQ(Pick("unknown.example.com"), "default-tls");
  EXPECT_EQ(Pick(""), "default-tls");  // no SNI
  EXPECT_EQ(router_->Pick(ClientHelloInfo{}), SniRouter::kDefault);
}

TEST_F(SniRouterTest, NamesThatAreNotHostNamesMatchNothing) {
  Build({{{"a.example.com"}, {}, "a-tls"}});
  EXPECT_EQ(Pick("a.example.com:443"), "default-tls");
  EXPECT_EQ(Pick("a.example.com/"), "default-tls");
  EXPECT_EQ(Pick(std::string(300, 'a')), "default-tls");
}

TEST_F(SniRouterTest, MostSpecificNameWinsWhateverTheOrder) {
  Build({{{"*.example.com"}, {}, "b-tls"},
         {{"*.a.example.com"}, {}, "h2-tls"},
         {{"x.a.example.com"}, {}, "a-tls"}});
  EXPECT_EQ(Pick("x.a.example.com"), "a-tls");
  EXPECT_EQ(Pick("y.a.example.com"), "h2-tls");
  EXPECT_EQ(Pick("y.example.com"), "b-tls");
}

TEST_F(SniRouterTest, AlpnNarrowsAnEntry) {
  Build({{{"a.example.com"}, {}, "a-tls"},
         {{"a.example.com"}, {"h2"}, "h2-tls"},
         {{}, {"h2"}, "any-h2"}});
  EXPECT_EQ(Pick("a.example.com", {"h2", "http/1.1"}), "h2-tls");
  EXPECT_EQ(Pick("a.example.com", {"http/1.1"}), "a-tls");
  EXPECT_EQ(Pick("a.example.com"), "a-tls");
  // A name-less entry with alpn: any other name, and no SNI at all.
  EXPECT_EQ(Pick("other.example.com", {"h2"}), "any-h2");
  EXPECT_EQ(Pick("", {"h2"}), "any-h2");
  EXPECT_EQ(Pick("", {"http/1.1"}), "default-tls");
}

TEST_F(SniRouterTest, FirstEntryWinsATie) {
  Build({{{"a.example.com"}, {}, "a-tls"}, {{"a.example.com"}, {}, "b-tls"}});
  EXPECT_EQ(Pick("a.example.com"), "a-tls");
}

TEST(SniRouter, BuildNamesTheField) {
  zproxy::v1::Config c =
      MakeConfig({{{"a.example.com"}, {}, "a-tls"}, {{"b.example.com"}, {}, "nope"}});
  std::string error;
  EXPECT_EQ(SniRouter::Build(c, c.listeners(0).tcp_proxy(), "listeners[0].tcp_proxy", &error),
            nullptr);
  EXPECT_EQ(error, "listeners[0].tcp_proxy.sni_routes[1].cluster: unknown cluster \"nope\"");
  c = MakeConfig({{{"a.*.com"}, {}, "a-tls"}});
  EXPECT_EQ(SniRouter::Build(c, c.listeners(0).tcp_proxy(), "listeners[0].tcp_proxy", &error),
            nullptr);
  EXPECT_TRUE(error.starts_with("listeners[0].tcp_proxy.sni_routes[0].server_names[0]: ")) << error;
}

}  // namespace
}  // namespace zproxy::tunnel
