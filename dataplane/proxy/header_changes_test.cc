#include "dataplane/proxy/header_changes.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace zproxy::proxy {
namespace {

routing::HeaderChanges Changes(std::vector<std::string> remove,
                               std::vector<std::pair<std::string, std::string>> set,
                               std::vector<std::pair<std::string, std::string>> add) {
  routing::HeaderChanges c;
  c.remove = std::move(remove);
  for (auto& [n, v] : set) c.set.push_back({n, v, v.find("${") != std::string::npos});
  for (auto& [n, v] : add) c.add.push_back({n, v, v.find("${") != std::string::npos});
  return c;
}

std::string Render(std::span<http::Field> fields) {
  std::string out;
  for (const auto& f : fields) out += std::string(f.name) + ": " + std::string(f.value) + "\n";
  return out;
}

TEST(HeaderChanges, RemoveSetAddInOrderCaseInsensitive) {
  http::Field in[] = {{"Accept", "*/*"}, {"X-Debug", "1"}, {"x-env", "dev"}, {"X-Tag", "c"}};
  std::span<http::Field> fields(in);
  http::Field out[16];
  char scratch[256];
  ScratchWriter w(scratch);
  auto c = Changes({"x-debug"}, {{"X-Env", "prod"}}, {{"X-Tag", "a"}});
  const routing::HeaderChanges* layers[] = {&c};
  ASSERT_TRUE(ApplyHeaderChanges(layers, {}, &fields, out, &w));
  EXPECT_EQ(Render(fields), "Accept: */*\nX-Tag: c\nX-Env: prod\nX-Tag: a\n");
}

TEST(HeaderChanges, LaterLayerSeesEarlierAdditionsAndVariablesExpand) {
  http::Field in[] = {{"Server", "nginx"}};
  std::span<http::Field> fields(in);
  http::Field out[16];
  char scratch[256];
  ScratchWriter w(scratch);
  auto route = Changes({}, {{"X-Served-By", "route"}, {"X-Client", "${client_address}!"}}, {});
  auto cluster = Changes({"server"}, {{"x-served-by", "cluster ${listener}"}}, {});
  const routing::HeaderChanges* layers[] = {&route, nullptr, &cluster};
  Variables vars;
  vars.client_address = "10.0.0.1";
  vars.listener = "web";
  ASSERT_TRUE(ApplyHeaderChanges(layers, vars, &fields, out, &w));
  EXPECT_EQ(Render(fields), "X-Client: 10.0.0.1!\nx-served-by: cluster web\n");
}

TEST(HeaderChanges, EmptyExpansionIsSkippedAndOverflowLeavesMessageAlone) {
  http::Field in[] = {{"A", "1"}};
  std::span<http::Field> fields(in);
  http::Field out[2];
  char scratch[64];
  ScratchWriter w(scratch);
  auto c = Changes({}, {{"X-Sni", "${tls_sni}"}}, {{"B", "2"}});
  const routing::HeaderChanges* layers[] = {&c};
  ASSERT_TRUE(ApplyHeaderChanges(layers, {}, &fields, out, &w));
  EXPECT_EQ(Render(fields), "A: 1\nB: 2\n");

  std::span<http::Field> again(in);
  auto big = Changes({}, {{"C", "3"}, {"D", "4"}}, {});
  const routing::HeaderChanges* more[] = {&big};
  ScratchWriter w2(scratch);
  EXPECT_FALSE(ApplyHeaderChanges(more, {}, &again, out, &w2));
  EXPECT_EQ(again.data(), in);
}

}  // namespace
}  // namespace zproxy::proxy
