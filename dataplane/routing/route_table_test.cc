#include "dataplane/routing/route_table.h"

#include <google/protobuf/text_format.h>

#include <string>

#include "gtest/gtest.h"

namespace zproxy::routing {
namespace {

zproxy::v1::Config ParseConfig(const std::string& text) {
  zproxy::v1::Config config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

std::shared_ptr<const RouteTable> MustBuild(const std::string& text) {
  std::string error;
  auto table = RouteTable::Build(ParseConfig(text), &error);
  EXPECT_NE(table, nullptr) << error;
  return table;
}

std::string BuildError(const std::string& text) {
  std::string error;
  auto table = RouteTable::Build(ParseConfig(text), &error);
  EXPECT_EQ(table, nullptr);
  return error;
}

constexpr char kClusters[] = R"(
  clusters { name: "app" }
  clusters { name: "api" }
  clusters { name: "static" }
)";

// Cluster name of the matched route, or "404".
std::string Route(const RouteTable& t, std::string_view host, std::string_view path,
                  std::string_view method = "GET", uint32_t listener = 0) {
  const RouteEntry* e = t.Match(listener, host, path, method);
  return e == nullptr ? "404" : e->cluster_name;
}

TEST(RouteTableTest, EntryCarriesClusterIndexRewriteAndIndices) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners { routes { match { prefix: "/x" } cluster: "static" } }
    listeners {
      routes { match { prefix: "/a" } cluster: "app" }
      routes { match { prefix: "/" } cluster: "api" host_rewrite: "backend.internal" }
    })");
  EXPECT_EQ(t->listener_count(), 2u);
  EXPECT_EQ(t->route_count(), 3u);
  const RouteEntry* e = t->Match(1, "h", "/b", "GET");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->cluster_name, "api");
  EXPECT_EQ(e->cluster_index, 1u);
  EXPECT_EQ(e->host_rewrite, "backend.internal");
  EXPECT_EQ(e->listener_index, 1u);
  EXPECT_EQ(e->route_index, 1u);
  EXPECT_EQ(e->stat_index, 2u);
  e = t->Match(0, "h", "/x", "GET");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->cluster_index, 2u);
  EXPECT_EQ(e->host_rewrite, "");
  EXPECT_EQ(e->stat_index, 0u);
}

TEST(RouteTableTest, ListenersAreIndependentAndOutOfRangeIsNoMatch) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners { routes { match { prefix: "/" } cluster: "app" } }
    listeners { name: "db" tcp_proxy { cluster: "api" } })");
  EXPECT_EQ(Route(*t, "h", "/", "GET", 0), "app");
  EXPECT_EQ(Route(*t, "h", "/", "GET", 1), "404");  // tcp_proxy listener: no HTTP routes
  EXPECT_EQ(Route(*t, "h", "/", "GET", 2), "404");
  EXPECT_EQ(Route(*t, "h", "/", "GET", 0xffffffffu), "404");
}

TEST(RouteTableTest, ExactPathAndPrefix) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes { match { path: "/healthz" } cluster: "static" }
      routes { match { prefix: "/api/" } cluster: "api" }
      routes { match { prefix: "/app" } cluster: "app" }
    })");
  EXPECT_EQ(Route(*t, "h", "/healthz"), "static");
  EXPECT_EQ(Route(*t, "h", "/healthz/"), "404");
  EXPECT_EQ(Route(*t, "h", "/healthzz"), "404");
  EXPECT_EQ(Route(*t, "h", "/Healthz"), "404");  // paths are case-sensitive
  EXPECT_EQ(Route(*t, "h", "/api/"), "api");
  EXPECT_EQ(Route(*t, "h", "/api/v1/users"), "api");
  EXPECT_EQ(Route(*t, "h", "/api"), "404");    // prefix "/api/" needs the slash
  EXPECT_EQ(Route(*t, "h", "/apple"), "app");  // byte prefix, as in Envoy
  EXPECT_EQ(Route(*t, "h", "/app"), "app");
  EXPECT_EQ(Route(*t, "h", "/"), "404");
  EXPECT_EQ(Route(*t, "h", ""), "404");
}

TEST(RouteTableTest, FirstMatchWinsNotLongestPrefix) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes { match { prefix: "/" } cluster: "app" }
      routes { match { prefix: "/api/" } cluster: "api" }
    }
    listeners {
      routes { match { prefix: "/api/" } cluster: "api" }
      routes { match { prefix: "/" } cluster: "app" }
    })");
  // Listener 0: the catch-all comes first and shadows "/api/" (nginx would pick "/api/").
  EXPECT_EQ(Route(*t, "h", "/api/x", "GET", 0), "app");
  EXPECT_EQ(Route(*t, "h", "/api/x", "GET", 1), "api");
  EXPECT_EQ(Route(*t, "h", "/other", "GET", 1), "app");
}

TEST(RouteTableTest, HostMatrix) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes { match { prefix: "/" hosts: "api.example.com" hosts: "[::1]" } cluster: "api" }
      routes { match { prefix: "/" hosts: "*.example.com" } cluster: "static" }
      routes { match { prefix: "/" hosts: "example.com" } cluster: "app" }
    })");
  EXPECT_EQ(Route(*t, "api.example.com", "/"), "api");
  EXPECT_EQ(Route(*t, "API.Example.Com:8080", "/"), "api");
  EXPECT_EQ(Route(*t, "api.example.com.", "/"), "api");
  EXPECT_EQ(Route(*t, "[::1]:80", "/"), "api");
  EXPECT_EQ(Route(*t, "[::1]", "/"), "api");
  EXPECT_EQ(Route(*t, "[::2]:80", "/"), "404");
  // Exact route listed first wins over the wildcard that also matches.
  EXPECT_EQ(Route(*t, "www.example.com", "/"), "static");
  EXPECT_EQ(Route(*t, "a.b.example.com:443", "/"), "static");
  EXPECT_EQ(Route(*t, "example.com", "/"), "app");  // wildcard does not cover the apex
  EXPECT_EQ(Route(*t, "example.com:8080", "/"), "app");
  EXPECT_EQ(Route(*t, "example.org", "/"), "404");
  EXPECT_EQ(Route(*t, "notexample.com", "/"), "404");
  EXPECT_EQ(Route(*t, "", "/"), "404");
  EXPECT_EQ(Route(*t, std::string(300, 'a') + ".example.com", "/"), "404");
}

TEST(RouteTableTest, EmptyHostsMatchesAnyHost) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes { match { prefix: "/" hosts: "a.test" } cluster: "api" }
      routes { match { prefix: "/" } cluster: "app" }
    })");
  EXPECT_EQ(Route(*t, "a.test", "/"), "api");
  EXPECT_EQ(Route(*t, "b.test", "/"), "app");
  EXPECT_EQ(Route(*t, "", "/"), "app");
  EXPECT_EQ(Route(*t, std::string(1000, 'x'), "/"), "app");
}

TEST(RouteTableTest, Methods) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes { match { prefix: "/" methods: "POST" methods: "PUT" } cluster: "api" }
      routes { match { prefix: "/" methods: "GET" } cluster: "static" }
      routes { match { prefix: "/" } cluster: "app" }
    })");
  EXPECT_EQ(Route(*t, "h", "/", "POST"), "api");
  EXPECT_EQ(Route(*t, "h", "/", "PUT"), "api");
  EXPECT_EQ(Route(*t, "h", "/", "GET"), "static");
  EXPECT_EQ(Route(*t, "h", "/", "get"), "app");  // case-sensitive
  EXPECT_EQ(Route(*t, "h", "/", "DELETE"), "app");
  EXPECT_EQ(Route(*t, "h", "/", "POS"), "app");
}

TEST(RouteTableTest, AllConditionsMustHold) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes {
        match { path: "/upload" hosts: "*.example.com" methods: "POST" }
        cluster: "api"
      }
    })");
  EXPECT_EQ(Route(*t, "a.example.com", "/upload", "POST"), "api");
  EXPECT_EQ(Route(*t, "a.example.com", "/upload", "GET"), "404");
  EXPECT_EQ(Route(*t, "example.com", "/upload", "POST"), "404");
  EXPECT_EQ(Route(*t, "a.example.com", "/upload/x", "POST"), "404");
}

TEST(RouteTableTest, NoListenersOrRoutes) {
  auto t = MustBuild("");
  EXPECT_EQ(t->listener_count(), 0u);
  EXPECT_EQ(Route(*t, "h", "/"), "404");
  t = MustBuild("listeners { name: \"empty\" }");
  EXPECT_EQ(Route(*t, "h", "/"), "404");
}

TEST(RouteTableTest, BuildErrorsNameTheField) {
  const std::string c = kClusters;
  EXPECT_EQ(BuildError(c + R"(listeners { routes { match { prefix: "/" } cluster: "nope" } })"),
            "listeners[0].routes[0].cluster: unknown cluster \"nope\"");
  EXPECT_EQ(BuildError(c + R"(listeners { routes { match { prefix: "/" } } })"),
            "listeners[0].routes[0].cluster: required");
  EXPECT_EQ(BuildError(c + R"(listeners {}
      listeners { routes { match { prefix: "/" } cluster: "app" }
                  routes { match { } cluster: "app" } })"),
            "listeners[1].routes[1].match: one of path or prefix is required (prefix \"/\" "
            "matches all)");
  EXPECT_EQ(
      BuildError(c + R"(listeners { routes { match { prefix: "/" path: "/a" } cluster: "app" } })"),
      "listeners[0].routes[0].match: set either path or prefix, not both");
  EXPECT_EQ(BuildError(c + R"(listeners { routes { match { prefix: "api" } cluster: "app" } })"),
            "listeners[0].routes[0].match.prefix: \"api\" must start with \"/\"");
  EXPECT_EQ(BuildError(c + R"(listeners { routes { match { path: "/a?b=1" } cluster: "app" } })"),
            "listeners[0].routes[0].match.path: \"/a?b=1\" must not contain a query (\"?\")");
  EXPECT_EQ(
      BuildError(c + R"(listeners { routes {
          match { prefix: "/" hosts: "ok.test" hosts: "a.*.test" } cluster: "app" } })"),
      "listeners[0].routes[0].match.hosts[1]: wildcard only allowed as a leading \"*.\" label in "
      "\"a.*.test\"");
  EXPECT_EQ(BuildError(c + R"(listeners { routes {
          match { prefix: "/" hosts: "a.test:80" } cluster: "app" } })"),
            "listeners[0].routes[0].match.hosts[0]: host \"a.test:80\" must not contain a port");
  EXPECT_EQ(BuildError(c + R"(listeners { routes {
          match { prefix: "/" methods: "get" } cluster: "app" } })"),
            "listeners[0].routes[0].match.methods[0]: method \"get\" is lowercase; methods are "
            "case-sensitive (use \"GET\", ...)");
  EXPECT_EQ(BuildError(c + R"(listeners { routes {
          match { prefix: "/" methods: "GE T" } cluster: "app" } })"),
            "listeners[0].routes[0].match.methods[0]: method \"GE T\" is not an HTTP token");
  EXPECT_EQ(BuildError(c + R"(clusters { name: "app" })"),
            "clusters[3].name: duplicate cluster name \"app\"");
}

}  // namespace
}  // namespace zproxy::routing
