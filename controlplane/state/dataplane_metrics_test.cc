#include "controlplane/state/dataplane_metrics.h"

#include <gtest/gtest.h>

#include <set>

namespace zproxy::state {
namespace {

TEST(DataplaneMetricsAddress, StablePrivateLoopbackOnTheSamePort) {
  EXPECT_EQ(DataplaneMetricsAddress(""), "");
  const std::string a = DataplaneMetricsAddress("127.0.0.1:9901");
  EXPECT_EQ(a, DataplaneMetricsAddress("127.0.0.1:9901"));  // a restarted zproxyd agrees
  EXPECT_EQ(a.rfind("127.", 0), 0u) << a;
  EXPECT_EQ(a.substr(a.rfind(':')), ":9901");
  EXPECT_EQ(DataplaneMetricsAddress("[::1]:9100")
                .substr(DataplaneMetricsAddress("[::1]:9100").rfind(':')),
            ":9100");
  std::set<std::string> seen;
  for (int port = 1000; port < 3000; ++port) {
    const std::string s = DataplaneMetricsAddress("0.0.0.0:" + std::to_string(port));
    EXPECT_NE(s.rfind("127.0.0.1:", 0), 0u) << s;
    const std::string last = s.substr(0, s.rfind(':')).substr(s.rfind('.', s.rfind(':')) + 1);
    EXPECT_NE(last, "0") << s;
    EXPECT_NE(last, "255") << s;
    seen.insert(s.substr(0, s.rfind(':')));
  }
  EXPECT_GT(seen.size(), 1900u);  // spread out: two zproxyds rarely share one
}

}  // namespace
}  // namespace zproxy::state
