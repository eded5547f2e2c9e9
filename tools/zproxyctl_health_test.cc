#include "tools/zproxyctl_health.h"

#include <gtest/gtest.h>

namespace zproxy::ctl {
namespace {

TEST(FormatAge, Units) {
  EXPECT_EQ(FormatAge(-1), "-");
  EXPECT_EQ(FormatAge(0), "0ms");
  EXPECT_EQ(FormatAge(850), "850ms");
  EXPECT_EQ(FormatAge(42'000), "42s");
  EXPECT_EQ(FormatAge(185'000), "3m05s");
  EXPECT_EQ(FormatAge(2 * 3600'000 + 10 * 60'000 + 59'000), "2h10m");
  EXPECT_EQ(FormatAge(4 * 86400'000LL + 3 * 3600'000), "4d03h");
}

v1::HealthResponse Sample() {
  v1::HealthResponse r;
  r.set_unix_time_ms(100'000);
  auto* plain = r.add_endpoints();
  plain->set_cluster("static");
  plain->set_address("10.0.0.1:80");
  plain->set_healthy(true);
  plain->set_source(v1::HEALTH_SOURCE_NO_CHECK);
  auto* down = r.add_endpoints();
  down->set_cluster("web");
  down->set_address("127.0.0.1:8081");
  down->set_healthy(false);
  down->set_source(v1::HEALTH_SOURCE_ACTIVE_CHECK);
  down->set_last_check_reason("connect: Connection refused");
  down->set_consecutive_failures(5);
  down->set_last_check_unix_ms(98'000);
  down->set_last_transition_unix_ms(90'000);
  down->set_checking_since_unix_ms(10'000);
  auto* up = r.add_endpoints();
  up->set_cluster("web");
  up->set_address("127.0.0.1:8082");
  up->set_healthy(true);
  up->set_draining(true);
  up->set_source(v1::HEALTH_SOURCE_ACTIVE_CHECK);
  up->set_last_check_ok(true);
  up->set_last_check_reason("HTTP 200");
  up->set_consecutive_successes(9);
  up->set_last_check_unix_ms(99'500);
  up->set_checking_since_unix_ms(40'000);
  auto* fresh = r.add_endpoints();
  fresh->set_cluster("web");
  fresh->set_address("127.0.0.1:8083");
  fresh->set_healthy(true);
  fresh->set_source(v1::HEALTH_SOURCE_ACTIVE_CHECK);
  return r;
}

TEST(RenderHealthTable, OneAlignedRowPerEndpoint) {
  const std::string out = RenderHealthTable(Sample());
  const std::string expected =
      "CLUSTER  ENDPOINT        STATE             SINCE  LAST-CHECK      REASON\n"
      "static   10.0.0.1:80     healthy           -      -               no health_check\n"
      "web      127.0.0.1:8081  UNHEALTHY         10s    2s ago failed   "
      "connect: Connection refused (5 in a row)\n"
      "web      127.0.0.1:8082  healthy,draining  >1m00s  500ms ago ok  HTTP 200\n"
      "web      127.0.0.1:8083  healthy           -      not yet         -\n";
  // Columns are padded to the widest cell: compare cell by cell, not the padding.
  auto cells = [](const std::string& line) {
    std::vector<std::string> v;
    size_t i = 0;
    while (i < line.size()) {
      size_t j = line.find("  ", i);
      if (j == std::string::npos) j = line.size();
      v.push_back(line.substr(i, j - i));
      i = line.find_first_not_of(' ', j);
      if (i == std::string::npos) break;
    }
    return v;
  };
  std::vector<std::vector<std::string>> got, want;
  for (size_t i = 0, j; i < out.size(); i = j + 1) {
    j = out.find('\n', i);
    got.push_back(cells(out.substr(i, j - i)));
  }
  for (size_t i = 0, j; i < expected.size(); i = j + 1) {
    j = expected.find('\n', i);
    want.push_back(cells(expected.substr(i, j - i)));
  }
  EXPECT_EQ(got, want) << out;
  // Aligned: every row's ENDPOINT starts at the same column.
  const size_t col = out.find("ENDPOINT");
  EXPECT_EQ(out.find("127.0.0.1:8081") - out.rfind('\n', out.find("127.0.0.1:8081")) - 1, col);
}

TEST(RenderHealthTable, OutlierNoteOnlyWhenSomeAreEjected) {
  v1::HealthResponse r = Sample();
  EXPECT_EQ(RenderHealthTable(r).find("note:"), std::string::npos);
  r.set_outlier_ejected(0);
  EXPECT_EQ(RenderHealthTable(r).find("note:"), std::string::npos);
  r.set_outlier_ejected(2);
  EXPECT_NE(RenderHealthTable(r).find("note: 2 endpoint ejection(s)"), std::string::npos);
}

TEST(HealthSummaryText, HealthyOfTotalAndDraining) {
  v1::ClusterHealthSummary s;
  s.set_endpoints(3);
  s.set_healthy(2);
  EXPECT_EQ(HealthSummaryText(s), "2/3 healthy");
  s.set_draining(1);
  EXPECT_EQ(HealthSummaryText(s), "2/3 healthy, 1 draining");
}

TEST(AddJsonMember, AppendsAsLastMember) {
  EXPECT_EQ(AddJsonMember("{\n \"a\": 1\n}\n", "h", "[]"), "{\n \"a\": 1,\n \"h\": []\n}\n");
  EXPECT_EQ(AddJsonMember("{}", "h", "2"), "{\n \"h\": 2\n}");
  EXPECT_EQ(AddJsonMember("{\n}\n", "h", "2"), "{\n \"h\": 2\n}\n");
  EXPECT_EQ(AddJsonMember("not json", "h", "2"), "not json");
}

}  // namespace
}  // namespace zproxy::ctl
