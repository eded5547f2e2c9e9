#include "dataplane/startup/bootstrap_inputs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <string>

namespace zproxy::dataplane::startup {
namespace {

using zproxy::v1::DataplaneBootstrap;

// Stand-ins for the fds zproxyd sends: any fd will do where nothing reads it.
std::vector<UniqueFd> SomeFds(int n) {
  std::vector<UniqueFd> fds;
  for (int i = 0; i < n; i++) fds.emplace_back(eventfd(0, EFD_CLOEXEC));
  return fds;
}

DataplaneBootstrap TwoListeners() {
  DataplaneBootstrap boot;
  boot.mutable_config()->add_listeners()->set_name("web");
  boot.mutable_config()->add_listeners()->set_name("db");
  return boot;
}

TEST(AssignListenSockets, SortsSocketsByWorkerWithTheirListenerIndex) {
  DataplaneBootstrap boot = TwoListeners();
  for (const char* listener : {"web", "db"}) {
    for (uint32_t w = 0; w < 2; w++) {
      auto* s = boot.add_sockets();
      s->set_listener(listener);
      s->set_worker(w);
    }
  }
  std::vector<UniqueFd> fds = SomeFds(4);
  std::vector<std::vector<WorkerListenSocket>> sockets;
  ASSERT_TRUE(AssignListenSockets(boot, fds, 2, &sockets));
  ASSERT_EQ(sockets.size(), 2u);
  ASSERT_EQ(sockets[0].size(), 2u);
  ASSERT_EQ(sockets[1].size(), 2u);
  EXPECT_EQ(sockets[0][0].fd, fds[0].get());
  EXPECT_EQ(sockets[0][0].listener, 0);
  EXPECT_EQ(sockets[1][0].fd, fds[1].get());
  EXPECT_EQ(sockets[0][1].fd, fds[2].get());
  EXPECT_EQ(sockets[0][1].listener, 1);
  EXPECT_EQ(sockets[1][1].fd, fds[3].get());
}

TEST(AssignListenSockets, RejectsAnUnknownListenerAWorkerOutOfRangeAndAMissingFd) {
  std::vector<std::vector<WorkerListenSocket>> sockets;
  {
    DataplaneBootstrap boot = TwoListeners();
    boot.add_sockets()->set_listener("nope");
    EXPECT_FALSE(AssignListenSockets(boot, SomeFds(1), 1, &sockets));
  }
  {
    DataplaneBootstrap boot = TwoListeners();
    auto* s = boot.add_sockets();
    s->set_listener("web");
    s->set_worker(1);
    EXPECT_FALSE(AssignListenSockets(boot, SomeFds(1), 1, &sockets));
  }
  {
    DataplaneBootstrap boot = TwoListeners();
    boot.add_sockets()->set_listener("web");
    EXPECT_FALSE(AssignListenSockets(boot, SomeFds(0), 1, &sockets));
  }
}

TEST(TakeSpliceMaps, MovesTheMapFdsOutOfTheBootstrapFds) {
  DataplaneBootstrap boot;
  boot.set_splice_pairs_fd_index(0);
  boot.set_splice_peer_fd_index(1);
  boot.set_splice_counters_fd_index(2);
  std::vector<UniqueFd> fds = SomeFds(3);
  const int pairs = fds[0].get(), peer = fds[1].get(), counters = fds[2].get();
  PassthroughCaps caps;
  ASSERT_TRUE(TakeSpliceMaps(boot, &fds, &caps));
  EXPECT_EQ(caps.pairs_fd, pairs);
  EXPECT_EQ(caps.peer_fd, peer);
  EXPECT_EQ(caps.counters_fd, counters);
  EXPECT_TRUE(caps.sockmap());
  EXPECT_FALSE(fds[0].valid());  // released: they stay open for the process's life
  close(pairs);
  close(peer);
  close(counters);
}

TEST(TakeSpliceMaps, WithoutBpfNothingIsTakenAndAnIndexOutOfRangeFails) {
  PassthroughCaps caps;
  std::vector<UniqueFd> fds = SomeFds(1);
  EXPECT_TRUE(TakeSpliceMaps(DataplaneBootstrap(), &fds, &caps));
  EXPECT_FALSE(caps.sockmap());
  DataplaneBootstrap boot;
  boot.set_splice_pairs_fd_index(5);
  EXPECT_FALSE(TakeSpliceMaps(boot, &fds, &caps));
}

TEST(MapHealthRegion, NoRegionIsFineAndAMissingFdFails) {
  HealthRegion region;
  HealthSlotTable slots;
  std::vector<UniqueFd> fds;
  EXPECT_TRUE(MapHealthRegion(DataplaneBootstrap(), &fds, &region, &slots));
  DataplaneBootstrap boot;
  boot.set_health_region_fd_index(0);
  EXPECT_FALSE(MapHealthRegion(boot, &fds, &region, &slots));
}

TEST(OpenAccessLog, StandardStreamsNoneAndAFile) {
  int fd = 0;
  EXPECT_TRUE(OpenAccessLog("", &fd));
  EXPECT_EQ(fd, -1);
  EXPECT_TRUE(OpenAccessLog("stdout", &fd));
  EXPECT_EQ(fd, 1);
  EXPECT_TRUE(OpenAccessLog("stderr", &fd));
  EXPECT_EQ(fd, 2);
  const std::string path = std::string(getenv("TEST_TMPDIR")) + "/access.log";
  ASSERT_TRUE(OpenAccessLog(path, &fd));
  EXPECT_GE(fd, 0);
  EXPECT_NE(fcntl(fd, F_GETFL) & O_APPEND, 0);
  close(fd);
  EXPECT_FALSE(OpenAccessLog("/nonexistent-dir/access.log", &fd));
  EXPECT_EQ(fd, -1);
}

}  // namespace
}  // namespace zproxy::dataplane::startup
