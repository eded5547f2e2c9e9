#include "controlplane/workers.h"

#include <gtest/gtest.h>

namespace zproxy::controlplane {
namespace {

TEST(Workers, ZeroMeansOnePerCpu) {
  std::string note;
  EXPECT_EQ(ResolveWorkers(0, 8, &note), 8u);
  EXPECT_NE(note.find("one per CPU"), std::string::npos);
}

TEST(Workers, CappedAtCpusAndSaysSo) {
  std::string note;
  EXPECT_EQ(ResolveWorkers(16, 2, &note), 2u);
  EXPECT_EQ(note, "workers: 16 configured, using 2 (only 2 CPUs in the affinity mask)");
  EXPECT_EQ(ResolveWorkers(1, 2, &note), 1u);
}

TEST(Workers, AffinityCountIsPositive) { EXPECT_GE(AffinityCpuCount(), 1u); }

}  // namespace
}  // namespace zproxy::controlplane
