// How lookup cost grows with the number of routes (the table is a linear scan today).
//   bazel run -c opt //dataplane/routing:route_table_benchmark
#include <benchmark/benchmark.h>

#include <string>

#include "dataplane/routing/route_table.h"

namespace zproxy::routing {
namespace {

// n routes, each for its own host "svcN.example.com" with a "/api/" prefix and one method,
// then a catch-all. The looked-up request hits the last host route: the worst case short
// of a miss.
std::shared_ptr<const RouteTable> MakeTable(int n) {
  zproxy::v1::Config config;
  config.add_clusters()->set_name("c");
  auto* listener = config.add_listeners();
  for (int i = 0; i < n; ++i) {
    auto* route = listener->add_routes();
    route->set_cluster("c");
    route->mutable_match()->set_prefix("/api/");
    route->mutable_match()->add_hosts("svc" + std::to_string(i) + ".example.com");
    route->mutable_match()->add_methods("GET");
  }
  auto* fallback = listener->add_routes();
  fallback->set_cluster("c");
  fallback->mutable_match()->set_prefix("/");
  std::string error;
  return RouteTable::Build(config, &error);
}

void BM_MatchLastHostRoute(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto table = MakeTable(n);
  const std::string host = "SVC" + std::to_string(n - 1) + ".example.com:8080";
  for (auto _ : state) {
    benchmark::DoNotOptimize(table->Match(0, host, "/api/users/42", "GET"));
  }
}
BENCHMARK(BM_MatchLastHostRoute)->RangeMultiplier(10)->Range(1, 10000);

void BM_MatchFallThroughToCatchAll(benchmark::State& state) {
  auto table = MakeTable(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(table->Match(0, "unknown.example.org", "/api/x", "GET"));
  }
}
BENCHMARK(BM_MatchFallThroughToCatchAll)->RangeMultiplier(10)->Range(1, 10000);

}  // namespace
}  // namespace zproxy::routing

BENCHMARK_MAIN();
