#include "controlplane/config/yaml_to_proto.h"

#include <gtest/gtest.h>

#include "zproxy/v1/config.pb.h"

namespace zproxy::config {
namespace {

using zproxy::v1::Config;

struct Mapped {
  Config config;
  ConfigErrors errors;
  SourceMap map;
};

Mapped Map(const std::string& yaml) {
  Mapped m;
  YamlMappingOptions options{{{"zproxy.v1.Endpoint", "address"}}};
  m.errors = YamlToMessage(YAML::Load(yaml), options, "t.yaml", &m.config, &m.map);
  return m;
}

std::string Joined(const ConfigErrors& errors) {
  std::string out;
  for (const auto& e : errors) out += e.ToString() + "\n";
  return out;
}

TEST(YamlToProto, MapsNestedMessagesListsAndScalars) {
  Mapped m = Map(R"(
listeners:
  - name: web
    address: 0.0.0.0:8080
    routes:
      - match: { prefix: /api, hosts: [a.example, "*.b.example"], methods: [GET] }
        cluster: app
workers: 3
io_uring: { sqpoll: true, buf_size: 4096 }
)");
  ASSERT_TRUE(m.errors.empty()) << Joined(m.errors);
  ASSERT_EQ(m.config.listeners_size(), 1);
  const auto& r = m.config.listeners(0).routes(0);
  EXPECT_EQ(r.match().prefix(), "/api");
  EXPECT_EQ(r.match().hosts(1), "*.b.example");
  EXPECT_EQ(r.match().methods(0), "GET");
  EXPECT_EQ(r.cluster(), "app");
  EXPECT_EQ(m.config.workers(), 3u);
  EXPECT_TRUE(m.config.io_uring().sqpoll());
  EXPECT_EQ(m.config.io_uring().buf_size(), 4096u);
}

TEST(YamlToProto, UnknownFieldNamesPathAndLineColumn) {
  Mapped m = Map(R"(listeners:
  - name: web
    address: 0.0.0.0:8080
    routes:
      - match: { prefix: / }
        cluster: app
      - match:
          prefx: /x
        cluster: app
)");
  ASSERT_EQ(m.errors.size(), 1u) << Joined(m.errors);
  EXPECT_EQ(m.errors[0].ToString(),
            "t.yaml:8:11: listeners[0].routes[1].match: unknown field \"prefx\"");
}

TEST(YamlToProto, UnknownTopLevelField) {
  Mapped m = Map("workers: 1\nlistner: []\n");
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors[0].ToString(), "t.yaml:2:1: unknown field \"listner\"");
}

TEST(YamlToProto, WrongScalarType) {
  Mapped m = Map("clusters:\n  - name: a\n    pool_size: abc\n");
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors[0].ToString(),
            "t.yaml:3:16: clusters[0].pool_size: expected an unsigned integer, got \"abc\"");
}

TEST(YamlToProto, NegativeAndOverflowingUnsignedRejected) {
  Mapped m = Map("workers: -1\n");
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors[0].message, "expected an unsigned integer, got \"-1\"");
  m = Map("workers: 4294967296\n");
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors[0].message, "value 4294967296 is too large (max 4294967295)");
  m = Map("listeners: [{http: {max_body_bytes: 4294967296}}]\n");  // uint64 fits
  EXPECT_TRUE(m.errors.empty()) << Joined(m.errors);
  EXPECT_EQ(m.config.listeners(0).http().max_body_bytes(), 4294967296u);
}

TEST(YamlToProto, MapWhereScalarExpectedAndViceVersa) {
  Mapped m = Map("workers: {a: 1}\nio_uring: 5\nlisteners: web\n");
  ASSERT_EQ(m.errors.size(), 3u) << Joined(m.errors);
  EXPECT_EQ(m.errors[0].message, "expected an unsigned integer, got a map");
  EXPECT_EQ(m.errors[1].message, "expected a map, got \"5\"");
  EXPECT_EQ(m.errors[2].message, "expected a list, got \"web\"");
}

TEST(YamlToProto, BooleanForms) {
  Mapped m = Map("io_uring: {sqpoll: yes}\n");
  ASSERT_TRUE(m.errors.empty());
  EXPECT_TRUE(m.config.io_uring().sqpoll());
  m = Map("io_uring: {sqpoll: maybe}\n");
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors[0].ToString(),
            "t.yaml:1:20: io_uring.sqpoll: expected a boolean (true/false), got \"maybe\"");
}

TEST(YamlToProto, EnumsCaseInsensitive) {
  Mapped m =
      Map("clusters:\n  - {name: a, lb: round_robin}\n  - {name: b, lb: LEAST_CONNECTIONS}\n"
          "  - {name: c, lb: Least_Connections}\n");
  ASSERT_TRUE(m.errors.empty()) << Joined(m.errors);
  EXPECT_EQ(m.config.clusters(0).lb(), zproxy::v1::ROUND_ROBIN);
  EXPECT_EQ(m.config.clusters(1).lb(), zproxy::v1::LEAST_CONNECTIONS);
  EXPECT_EQ(m.config.clusters(2).lb(), zproxy::v1::LEAST_CONNECTIONS);
}

TEST(YamlToProto, UnknownEnumListsChoices) {
  Mapped m = Map("clusters:\n  - {name: a, lb: ring_hash}\n");
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors[0].ToString(),
            "t.yaml:2:19: clusters[0].lb: expected one of round_robin, least_connections, got "
            "\"ring_hash\"");
}

TEST(YamlToProto, EndpointScalarShorthandAndFullForm) {
  Mapped m =
      Map("clusters:\n  - name: a\n    endpoints: [ 127.0.0.1:3000, {address: 127.0.0.1:3001, "
          "weight: 5} ]\n");
  ASSERT_TRUE(m.errors.empty()) << Joined(m.errors);
  const auto& c = m.config.clusters(0);
  ASSERT_EQ(c.endpoints_size(), 2);
  EXPECT_EQ(c.endpoints(0).address(), "127.0.0.1:3000");
  EXPECT_EQ(c.endpoints(1).address(), "127.0.0.1:3001");
  EXPECT_EQ(c.endpoints(1).weight(), 5u);
}

TEST(YamlToProto, ScalarShorthandOnlyForConfiguredMessages) {
  Mapped m = Map("listeners:\n  - tcp_proxy: pg\n");
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors[0].field_path, "listeners[0].tcp_proxy");
  EXPECT_EQ(m.errors[0].message, "expected a map, got \"pg\"");
}

TEST(YamlToProto, DuplicateKeyIsAnError) {
  Mapped m = Map("workers: 1\nworkers: 2\n");
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors[0].ToString(), "t.yaml:2:1: field \"workers\" given twice");
}

TEST(YamlToProto, NullValueLeavesFieldUnset) {
  Mapped m = Map("workers:\nio_uring:\n");
  ASSERT_TRUE(m.errors.empty()) << Joined(m.errors);
  EXPECT_EQ(m.config.workers(), 0u);
  EXPECT_FALSE(m.config.has_io_uring());
}

TEST(YamlToProto, CollectsAllErrors) {
  Mapped m = Map(R"(
workers: x
clusters:
  - name: a
    pool_size: y
    bogus: 1
listeners:
  - nme: web
)");
  ASSERT_EQ(m.errors.size(), 4u) << Joined(m.errors);
  EXPECT_EQ(m.errors[0].field_path, "workers");
  EXPECT_EQ(m.errors[1].field_path, "clusters[0].pool_size");
  EXPECT_EQ(m.errors[2].field_path, "clusters[0]");
  EXPECT_EQ(m.errors[3].field_path, "listeners[0]");
}

TEST(YamlToProto, SourceMapRecordsValuePositions) {
  Mapped m = Map("listeners:\n  - name: web\n    address: 1.2.3.4:80\n");
  ASSERT_TRUE(m.errors.empty());
  ASSERT_TRUE(m.map.count("listeners[0].address"));
  EXPECT_EQ(m.map["listeners[0].address"].line, 3);
  EXPECT_EQ(m.map["listeners[0].address"].column, 14);
  ASSERT_TRUE(m.map.count("listeners[0]"));
  EXPECT_EQ(m.map["listeners[0]"].line, 2);
}

TEST(YamlToProto, TopLevelMustBeAMap) {
  Mapped m = Map("- a\n- b\n");
  ASSERT_EQ(m.errors.size(), 1u);
  EXPECT_EQ(m.errors[0].message, "expected a map, got a list");
}

}  // namespace
}  // namespace zproxy::config
