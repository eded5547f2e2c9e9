#include "dataplane/routing/route_table.h"

#include <google/protobuf/text_format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

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

// Counts heap allocations so tests can prove the hot path makes none.
std::atomic<long> g_allocations{0};
}  // namespace
}  // namespace zproxy::routing

void* operator new(std::size_t size) {
  zproxy::routing::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace zproxy::routing {
namespace {

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

// Everything controlplane/config/validate.cc accepts must build (else the data plane would
// NACK a config `zproxyd --check` passed), and behave as documented.
TEST(RouteTableTest, AcceptsWhatTheValidatorAccepts) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes { match { path: "/q?x=1" } cluster: "static" }
      routes { match { prefix: "/" methods: "get" } cluster: "api" }
      routes { match { hosts: "a.test" } cluster: "app" }
    })");
  EXPECT_EQ(Route(*t, "h", "/q", "POST"), "404");  // the query never reaches the router
  EXPECT_EQ(Route(*t, "h", "/", "get"), "api");    // exact, case-sensitive
  EXPECT_EQ(Route(*t, "h", "/", "GET"), "404");
  EXPECT_EQ(Route(*t, "a.test", "/any", "GET"), "app");  // no path condition = any path
  EXPECT_EQ(Route(*t, "a.test", "", "GET"), "app");
  EXPECT_EQ(Route(*t, "a.test", "*", "OPTIONS"), "app");
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
  EXPECT_EQ(
      BuildError(c + R"(listeners { routes { match { prefix: "/" path: "/a" } cluster: "app" } })"),
      "listeners[0].routes[0].match: set either path or prefix, not both");
  EXPECT_EQ(BuildError(c + R"(listeners { routes { match { prefix: "api" } cluster: "app" } })"),
            "listeners[0].routes[0].match.prefix: \"api\" must start with \"/\"");
  EXPECT_EQ(BuildError(c + R"(listeners {}
      listeners { routes { match { prefix: "/" } cluster: "app" }
                  routes { match { path: "healthz" } cluster: "app" } })"),
            "listeners[1].routes[1].match.path: \"healthz\" must start with \"/\"");
  EXPECT_EQ(
      BuildError(c + R"(listeners { routes {
          match { prefix: "/" hosts: "ok.test" hosts: "a.*.test" } cluster: "app" } })"),
      "listeners[0].routes[0].match.hosts[1]: wildcard only allowed as a leading \"*.\" label in "
      "\"a.*.test\"");
  EXPECT_EQ(BuildError(c + R"(listeners { routes {
          match { prefix: "/" hosts: "a.test:80" } cluster: "app" } })"),
            "listeners[0].routes[0].match.hosts[0]: host \"a.test:80\" must not contain a port");
  EXPECT_EQ(BuildError(c + R"(listeners { routes {
          match { prefix: "/" methods: "GE T" } cluster: "app" } })"),
            "listeners[0].routes[0].match.methods[0]: method \"GE T\" is not an HTTP token");
  EXPECT_EQ(BuildError(c + R"(clusters { name: "app" })"),
            "clusters[3].name: duplicate cluster name \"app\"");
}

// The host index must give exactly what a plain first-match scan gives. The reference
// below is written independently of the implementation, straight from the semantics.
struct RefRoute {
  bool exact = false;
  std::string path;
  std::vector<std::string> hosts;
  std::vector<std::string> methods;
};

std::string RefNormalize(std::string h) {
  if (!h.empty() && h[0] == '[') {
    h = h.substr(0, h.find(']') + 1);
  } else if (h.find(':') != std::string::npos) {
    h = h.substr(0, h.find(':'));
  }
  if (!h.empty() && h.back() == '.') h.pop_back();
  for (char& c : h) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return h;
}

bool RefHostMatch(const std::string& pattern, const std::string& host) {
  std::string p = RefNormalize(pattern);
  if (p.rfind("*.", 0) == 0) {
    std::string suffix = p.substr(1);
    return host.size() > suffix.size() &&
           host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  return p == host;
}

int RefMatch(const std::vector<RefRoute>& routes, const std::string& raw_host,
             const std::string& path, const std::string& method) {
  const std::string host = RefNormalize(raw_host);
  for (size_t i = 0; i < routes.size(); ++i) {
    const RefRoute& r = routes[i];
    if (r.exact ? path != r.path : path.rfind(r.path, 0) != 0) continue;
    if (!r.methods.empty() &&
        std::find(r.methods.begin(), r.methods.end(), method) == r.methods.end()) {
      continue;
    }
    if (!r.hosts.empty() && std::none_of(r.hosts.begin(), r.hosts.end(),
                                         [&](const auto& p) { return RefHostMatch(p, host); })) {
      continue;
    }
    return static_cast<int>(i);
  }
  return -1;
}

TEST(RouteTableTest, IndexedLookupEqualsFirstMatchScan) {
  std::mt19937 rng(12345);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  const std::vector<std::string> names = {"a.x.test", "b.x.test", "x.test",  "a.b.x.test",
                                          "y.test",   "[::1]",    "Z.X.TEST"};
  const std::vector<std::string> wildcards = {"*.x.test", "*.b.x.test", "*.test", "*.Y.test"};
  const std::vector<std::string> paths = {"/", "/a", "/a/", "/a/b", "/b", "/ab"};
  const std::vector<std::string> methods = {"GET", "POST", "PUT"};
  const std::vector<std::string> request_hosts = {
      "a.x.test", "A.X.TEST:80", "b.x.test.", "x.test",   "a.b.x.test", "c.b.x.test:8080",
      "y.test",   "q.y.test",    "[::1]:80",  "[::2]",    "other",      "",
      "z.x.test", ".x.test",     "test",      "a..x.test"};

  for (int round = 0; round < 200; ++round) {
    zproxy::v1::Config config;
    config.add_clusters()->set_name("c");
    auto* listener = config.add_listeners();
    std::vector<RefRoute> ref;
    const int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) {
      RefRoute r;
      r.exact = rng() % 3 == 0;
      r.path = pick(paths);
      if (rng() % 8 == 0) {  // no path condition
        r.exact = false;
        r.path.clear();
      }
      for (int k = static_cast<int>(rng() % 4); k > 0; --k) {
        r.hosts.push_back(rng() % 3 == 0 ? pick(wildcards) : pick(names));
      }
      if (rng() % 3 == 0) r.methods.push_back(pick(methods));
      auto* route = listener->add_routes();
      route->set_cluster("c");
      if (r.exact) {
        route->mutable_match()->set_path(r.path);
      } else {
        route->mutable_match()->set_prefix(r.path);
      }
      for (const auto& h : r.hosts) route->mutable_match()->add_hosts(h);
      for (const auto& m : r.methods) route->mutable_match()->add_methods(m);
      ref.push_back(r);
    }
    std::string error;
    auto table = RouteTable::Build(config, &error);
    ASSERT_NE(table, nullptr) << error;
    for (const std::string& host : request_hosts) {
      for (const std::string& path : paths) {
        for (const std::string& method : methods) {
          const RouteEntry* e = table->Match(0, host, path, method);
          const int got = e == nullptr ? -1 : static_cast<int>(e->route_index);
          ASSERT_EQ(got, RefMatch(ref, host, path, method))
              << "round " << round << " host " << host << " path " << path << " " << method;
        }
      }
    }
  }
}

TEST(RouteTableTest, MatchDoesNotAllocate) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes { match { path: "/x" hosts: "a.example.com" methods: "GET" } cluster: "api" }
      routes { match { prefix: "/" hosts: "*.example.com" } cluster: "static" }
      routes { match { prefix: "/" } cluster: "app" }
    })");
  const std::string long_host(400, 'h');
  const long probe = g_allocations.load();
  ::operator delete(::operator new(4));  // the counter must see allocations, or this test is void
  ASSERT_GT(g_allocations.load(), probe);
  const long before = g_allocations.load();
  for (int i = 0; i < 100; ++i) {
    t->Match(0, "A.Example.com:8080", "/x", "GET");
    t->Match(0, "b.a.example.com", "/y", "POST");
    t->Match(0, long_host, "/z", "GET");
    t->Match(5, "a.example.com", "/", "GET");
  }
  EXPECT_EQ(g_allocations.load(), before);
}

// --- Route policy matches: regex path, header and query conditions.

std::string RouteWith(const RouteTable& t, std::string_view path, std::string_view query,
                      const std::vector<http::Field>& fields) {
  RequestView v{"h", path, "GET", query, fields};
  const RouteEntry* e = t.Match(0, v);
  return e == nullptr ? "404" : e->cluster_name;
}

TEST(RouteTableTest, RegexHeaderAndQueryConditions) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes { match { regex: "^/v[0-9]+/items$" } cluster: "api" }
      routes { match { prefix: "/h" headers { name: "x-canary" exact: "1" } } cluster: "static" }
      routes { match { prefix: "/h" headers { name: "User-Agent" regex: "bot.*" invert: true } }
               cluster: "api" }
      routes { match { prefix: "/q" query_params { name: "v" exact: "2" }
                       query_params { name: "debug" present: true } } cluster: "static" }
      routes { match { prefix: "/q" query_params { name: "v" present: false } } cluster: "api" }
      routes { match { prefix: "/" } cluster: "app" }
    })");
  EXPECT_EQ(RouteWith(*t, "/v2/items", "", {}), "api");
  EXPECT_EQ(RouteWith(*t, "/v2/items/x", "", {}), "app");  // whole path
  EXPECT_EQ(RouteWith(*t, "/h", "", {{"X-Canary", "1"}}), "static");
  EXPECT_EQ(RouteWith(*t, "/h", "", {{"X-Canary", "2"}, {"user-agent", "curl"}}), "api");
  EXPECT_EQ(RouteWith(*t, "/h", "", {{"User-Agent", "bot/1"}}), "app");
  EXPECT_EQ(RouteWith(*t, "/h", "", {}), "api");  // inverted regex on an absent field holds
  EXPECT_EQ(RouteWith(*t, "/q", "a=1&v=2&debug", {}), "static");
  EXPECT_EQ(RouteWith(*t, "/q", "v=2", {}), "app");  // debug missing, and v is present
  EXPECT_EQ(RouteWith(*t, "/q", "x=1", {}), "api");
  EXPECT_EQ(RouteWith(*t, "/q", "vv=1", {}), "api");  // names compare whole
}

TEST(RouteTableTest, PolicyMatchesAllocateNothing) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes { match { regex: "^/v[0-9]+/items$" headers { name: "x-a" prefix: "b" } }
               cluster: "api" }
      routes { match { prefix: "/" query_params { name: "k" regex: "[a-z]+" } } cluster: "app" }
    })");
  std::vector<http::Field> fields = {{"X-A", "bcd"}};
  RouteWith(*t, "/v1/items", "k=abc", fields);  // warm RE2's caches
  RouteWith(*t, "/x", "k=abc", fields);
  long before = g_allocations.load();
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(RouteWith(*t, "/v1/items", "k=abc", fields), "api");
    EXPECT_EQ(RouteWith(*t, "/x", "k=abc", fields), "app");
  }
  EXPECT_EQ(g_allocations.load(), before);
}

TEST(RouteTableTest, RoutesThatAnswerNeedNoClusterAndCarryTheirPolicy) {
  auto t = MustBuild(std::string(kClusters) + R"(
    listeners {
      routes { match { prefix: "/old" } redirect { path: "/new" code: 308 } }
      routes { match { prefix: "/ping" } direct_response { status: 200 body: "pong" } }
      routes { match { prefix: "/" } cluster: "app" rate_limit { requests_per_second: 5 } }
    })");
  const RouteEntry* e = t->Match(0, "h", "/old/x", "GET");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->action(), RouteAction::kRedirect);
  EXPECT_EQ(e->policy->redirect.code, 308);
  e = t->Match(0, "h", "/ping", "GET");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->action(), RouteAction::kDirectResponse);
  EXPECT_EQ(e->policy->direct.content_type, "text/plain");
  e = t->Match(0, "h", "/", "GET");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->action(), RouteAction::kForward);
  EXPECT_TRUE(e->policy->has_rate_limit);
  EXPECT_EQ(t->rate_limit_count(), 1u);
  EXPECT_NE(BuildError(std::string(kClusters) +
                       R"(listeners { routes { match { prefix: "/" } cluster: "app"
                            request_headers { set { key: "Host" value: "x" } } } })")
                .find("listeners[0].routes[0].request_headers.set[\"Host\"]"),
            std::string::npos);
}

}  // namespace
}  // namespace zproxy::routing
