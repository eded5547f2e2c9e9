#include "controlplane/sync/sync_sessions.h"

#include <gtest/gtest.h>

#include <thread>

namespace zproxy::sync {
namespace {

using Ms = std::chrono::milliseconds;

zproxy::v1::ConfigSnapshot Snap(uint64_t version) {
  zproxy::v1::ConfigSnapshot s;
  s.set_version(version);
  return s;
}

// A fake data plane: answers each pushed snapshot with `answer` on another thread.
struct FakeDataplane {
  SessionRegistry* reg;
  std::shared_ptr<SessionRegistry::Session> session;
  std::vector<std::thread> threads;
  std::function<zproxy::v1::DataplaneMessage(uint64_t)> answer;

  FakeDataplane(SessionRegistry* r, pid_t pid) : reg(r) {
    session = reg->Add(pid, 1, [this](const zproxy::v1::ControlMessage& m) {
      const uint64_t v = m.snapshot().version();
      if (answer) threads.emplace_back([this, v] { reg->OnMessage(session, answer(v)); });
      return true;
    });
  }
  ~FakeDataplane() {
    for (auto& t : threads) t.join();
  }
};

TEST(SessionRegistry, AckCommits) {
  SessionRegistry reg;
  FakeDataplane dp(&reg, 42);
  dp.answer = [](uint64_t v) {
    zproxy::v1::DataplaneMessage m;
    m.mutable_ack()->set_version(v);
    m.mutable_ack()->set_apply_us(7);
    return m;
  };
  uint64_t serving = 0;
  ASSERT_TRUE(reg.ServingVersion(42, &serving));
  EXPECT_EQ(serving, 1u);  // its Hello's
  PushOutcome o = reg.Push(42, Snap(5), Ms(100), Ms(1000));
  EXPECT_EQ(o.kind, PushOutcome::kAck);
  EXPECT_EQ(o.apply_us, 7u);
  ASSERT_TRUE(reg.ServingVersion(42, &serving));
  EXPECT_EQ(serving, 5u);  // the ACKed push's
  EXPECT_FALSE(reg.ServingVersion(43, &serving));
}

TEST(SessionRegistry, NackCarriesReasonAndRestartFlag) {
  SessionRegistry reg;
  FakeDataplane dp(&reg, 42);
  bool restart = false;
  dp.answer = [&](uint64_t v) {
    zproxy::v1::DataplaneMessage m;
    m.mutable_nack()->set_version(v);
    m.mutable_nack()->set_reason("listeners: changed");
    m.mutable_nack()->set_needs_restart(restart);
    return m;
  };
  PushOutcome o = reg.Push(42, Snap(5), Ms(100), Ms(1000));
  EXPECT_EQ(o.kind, PushOutcome::kRejected);
  EXPECT_EQ(o.reason, "listeners: changed");
  restart = true;
  o = reg.Push(42, Snap(6), Ms(100), Ms(1000));
  EXPECT_EQ(o.kind, PushOutcome::kNeedsRestart);
  uint64_t serving = 0;
  ASSERT_TRUE(reg.ServingVersion(42, &serving));
  EXPECT_EQ(serving, 1u);  // a NACK changes nothing
}

TEST(SessionRegistry, NoStreamTimeoutAndDisconnect) {
  SessionRegistry reg;
  EXPECT_EQ(reg.Push(1, Snap(2), Ms(10), Ms(10)).kind, PushOutcome::kNoStream);
  FakeDataplane silent(&reg, 7);  // never answers
  PushOutcome o = reg.Push(7, Snap(2), Ms(10), Ms(50));
  EXPECT_EQ(o.kind, PushOutcome::kTimeout);
  EXPECT_NE(o.reason.find("did not answer config version 2"), std::string::npos) << o.reason;
  std::thread leaver([&] {
    std::this_thread::sleep_for(Ms(30));
    reg.Remove(silent.session);
  });
  o = reg.Push(7, Snap(3), Ms(10), Ms(5000));
  leaver.join();
  EXPECT_EQ(o.kind, PushOutcome::kNoStream);
  EXPECT_NE(o.reason.find("disconnected"), std::string::npos) << o.reason;
}

TEST(SessionRegistry, PushesOnlyToTheNamedPidAndKeepsStats) {
  SessionRegistry reg;
  FakeDataplane old_dp(&reg, 10), new_dp(&reg, 11);
  int old_got = 0;
  old_dp.answer = [&](uint64_t) {
    ++old_got;
    return zproxy::v1::DataplaneMessage();
  };
  new_dp.answer = [](uint64_t v) {
    zproxy::v1::DataplaneMessage m;
    m.mutable_ack()->set_version(v);
    return m;
  };
  EXPECT_EQ(reg.Push(11, Snap(3), Ms(10), Ms(1000)).kind, PushOutcome::kAck);
  EXPECT_EQ(old_got, 0);

  std::string text;
  EXPECT_FALSE(reg.LatestStats(11, Ms(1000), &text, nullptr));
  zproxy::v1::DataplaneMessage stats;
  stats.mutable_stats()->set_config_version(3);
  stats.mutable_stats()->set_prometheus_text("zproxy_requests_total 5\n");
  reg.OnMessage(new_dp.session, stats);
  uint64_t version = 0;
  ASSERT_TRUE(reg.LatestStats(11, Ms(1000), &text, &version));
  EXPECT_EQ(text, "zproxy_requests_total 5\n");
  EXPECT_EQ(version, 3u);
  EXPECT_FALSE(reg.LatestStats(10, Ms(1000), &text, nullptr));
  EXPECT_EQ(reg.WaitFor([](pid_t p) { return p == 11; }, Ms(10)), 11);
  EXPECT_EQ(reg.WaitFor([](pid_t p) { return p == 12; }, Ms(10)), -1);
}

}  // namespace
}  // namespace zproxy::sync
