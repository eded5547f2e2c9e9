#include "controlplane/probes/readiness.h"

#include <gtest/gtest.h>

namespace zproxy::probes {
namespace {

TEST(Readiness, OnlyARunningConnectedDataplaneOnTheCurrentVersion) {
  ReadinessInputs in;
  in.current = 3;
  EXPECT_EQ(EvaluateReadiness(in).reason, "no data plane running");
  in.pid = 42;
  EXPECT_FALSE(EvaluateReadiness(in).ready);
  EXPECT_NE(EvaluateReadiness(in).reason.find("not connected"), std::string::npos);
  in.connected = true;
  in.serving = 2;
  EXPECT_EQ(EvaluateReadiness(in).reason,
            "data plane pid 42 serves config version 2, current is 3");
  in.serving = 3;
  EXPECT_TRUE(EvaluateReadiness(in).ready);
  in.serving = 4;  // ACKed, not yet published
  EXPECT_TRUE(EvaluateReadiness(in).ready);
  in.stopping = true;
  EXPECT_EQ(EvaluateReadiness(in).reason, "draining: zproxyd is stopping");
}

TEST(Readiness, WithoutTheSyncSocketTheSupervisorsVersionCounts) {
  ReadinessInputs in;
  in.have_sync = false;
  in.pid = 7;
  in.current = 1;
  in.started_with = 1;
  EXPECT_TRUE(EvaluateReadiness(in).ready);
  in.current = 2;
  EXPECT_FALSE(EvaluateReadiness(in).ready);
}

}  // namespace
}  // namespace zproxy::probes
