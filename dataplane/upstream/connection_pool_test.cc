#include "dataplane/upstream/connection_pool.h"

#include <gtest/gtest.h>

#include <vector>

namespace zproxy::upstream {
namespace {

struct Links {
  std::vector<PoolLink>* links;
  PoolLink& operator()(uint32_t c) const { return (*links)[c]; }
};

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override { pool.Init(Links{&links}, 2); }
  std::vector<PoolLink> links = std::vector<PoolLink>(16);
  ConnectionPool<Links> pool;
};

TEST_F(PoolTest, Http1OneStreamPerConnection) {
  EXPECT_EQ(pool.Acquire(0), kNoConn);  // nothing yet: the caller connects
  pool.Opened(3, 0, 1);
  EXPECT_EQ(pool.Acquire(0), kNoConn);  // busy with its one stream
  EXPECT_EQ(pool.Release(3, 0, true, 8), Released::kIdle);
  EXPECT_EQ(pool.idle(0), 1u);
  EXPECT_EQ(pool.Acquire(1), kNoConn);  // per endpoint
  EXPECT_EQ(pool.Acquire(0), 3u);
  EXPECT_EQ(pool.idle(0), 0u);
  EXPECT_EQ(pool.Acquire(0), kNoConn);
}

TEST_F(PoolTest, MostRecentlyUsedFirst) {
  pool.Opened(1, 0, 1);
  pool.Opened(2, 0, 1);
  pool.Release(1, 0, true, 8);
  pool.Release(2, 0, true, 8);
  EXPECT_EQ(pool.Acquire(0), 2u);
  EXPECT_EQ(pool.Acquire(0), 1u);
}

TEST_F(PoolTest, IdleLimitAndNotReusable) {
  pool.Opened(1, 0, 1);
  pool.Opened(2, 0, 1);
  pool.Opened(4, 0, 1);
  EXPECT_EQ(pool.Release(1, 0, true, 1), Released::kIdle);
  EXPECT_EQ(pool.Release(2, 0, true, 1), Released::kClose);   // one idle is the limit
  EXPECT_EQ(pool.Release(4, 0, false, 8), Released::kClose);  // framing not intact
  EXPECT_EQ(pool.idle(0), 1u);
  EXPECT_EQ(pool.Acquire(0), 1u);
  EXPECT_EQ(pool.Acquire(0), kNoConn);
}

TEST_F(PoolTest, RemoveTakesAnIdleConnectionOut) {
  pool.Opened(1, 0, 1);
  pool.Opened(2, 0, 1);
  pool.Release(1, 0, true, 8);
  pool.Release(2, 0, true, 8);
  pool.Remove(2, 0);  // closed by the upstream while idle
  EXPECT_EQ(pool.idle(0), 1u);
  EXPECT_EQ(pool.AnyIdle(0), 1u);
  pool.Remove(1, 0);
  EXPECT_EQ(pool.AnyIdle(0), kNoConn);
  EXPECT_EQ(pool.Acquire(0), kNoConn);
  pool.Remove(1, 0);  // twice is harmless
  EXPECT_EQ(pool.idle(0), 0u);
}

TEST_F(PoolTest, MultiplexedConnectionTakesStreamsUpToItsLimit) {
  pool.Opened(5, 1, 3);  // e.g. HTTP/2 with SETTINGS_MAX_CONCURRENT_STREAMS 3
  EXPECT_EQ(pool.Acquire(1), 5u);
  EXPECT_EQ(pool.Acquire(1), 5u);
  EXPECT_EQ(pool.Acquire(1), kNoConn);  // full: the next request opens another
  EXPECT_EQ(pool.idle(1), 0u);
  EXPECT_EQ(pool.Release(5, 1, true, 8), Released::kBusy);
  EXPECT_EQ(pool.Acquire(1), 5u);  // room again
  EXPECT_EQ(pool.Release(5, 1, true, 8), Released::kBusy);
  EXPECT_EQ(pool.Release(5, 1, true, 8), Released::kBusy);
  EXPECT_EQ(pool.Release(5, 1, true, 8), Released::kIdle);
  EXPECT_EQ(pool.idle(1), 1u);
}

TEST_F(PoolTest, PeerLowersAndRaisesItsLimit) {
  pool.Opened(6, 0, 4);
  EXPECT_EQ(pool.Acquire(0), 6u);  // 2 streams
  pool.SetMaxStreams(6, 0, 2);     // SETTINGS: now full
  EXPECT_EQ(pool.Acquire(0), kNoConn);
  pool.SetMaxStreams(6, 0, 10);
  EXPECT_EQ(pool.Acquire(0), 6u);
}

TEST_F(PoolTest, ClosingABusyStreamCloseRemovesTheConnection) {
  pool.Opened(7, 0, 4);
  EXPECT_EQ(pool.Acquire(0), 7u);
  // The connection broke (GOAWAY, reset): no new streams on it.
  pool.Remove(7, 0);
  EXPECT_EQ(pool.Acquire(0), kNoConn);
}

TEST_F(PoolTest, ReleasingTheLastStreamOfAListedConnectionOverTheLimitCloses) {
  pool.Opened(8, 0, 2);
  pool.Opened(9, 0, 1);
  EXPECT_EQ(pool.Release(9, 0, true, 1), Released::kIdle);
  EXPECT_EQ(pool.Release(8, 0, true, 1), Released::kClose);  // listed (had room), now idle: over
  EXPECT_EQ(pool.idle(0), 1u);
  EXPECT_EQ(pool.Acquire(0), 9u);
  EXPECT_EQ(pool.Acquire(0), kNoConn);
  EXPECT_EQ(pool.idle(0), 0u);
}

}  // namespace
}  // namespace zproxy::upstream
