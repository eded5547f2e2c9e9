#include "controlplane/sync/config_push.h"

#include <gtest/gtest.h>

#include <thread>

namespace zproxy::sync {
namespace {

using Ms = std::chrono::milliseconds;

// A connected data plane answering every snapshot with `answer(version)`.
struct FakeDataplane {
  SessionRegistry* reg;
  std::shared_ptr<SessionRegistry::Session> session;
  std::vector<std::thread> threads;
  std::function<zproxy::v1::DataplaneMessage(uint64_t)> answer;
  zproxy::v1::ConfigSnapshot last;

  FakeDataplane(SessionRegistry* r, pid_t pid) : reg(r) {
    session = reg->Add(pid, 1, [this](const zproxy::v1::ControlMessage& m) {
      last = m.snapshot();
      const uint64_t v = m.snapshot().version();
      threads.emplace_back([this, v] { reg->OnMessage(session, answer(v)); });
      return true;
    });
  }
  ~FakeDataplane() {
    for (auto& t : threads) t.join();
  }
};

zproxy::v1::DataplaneMessage Nack(uint64_t v, const std::string& reason, bool restart) {
  zproxy::v1::DataplaneMessage m;
  m.mutable_nack()->set_version(v);
  m.mutable_nack()->set_reason(reason);
  m.mutable_nack()->set_needs_restart(restart);
  return m;
}

struct Handover {
  int calls = 0;
  bool ok = true;
  HandoverFn fn() {
    return [this](const zproxy::v1::Config&, uint64_t, std::string* err) {
      ++calls;
      if (!ok) *err = "new data plane exited";
      return ok;
    };
  }
};

const PushTimeouts kFast{Ms(20), Ms(500)};

TEST(ApplyConfig, AckNeedsNoHandoverAndCarriesHealthSlots) {
  SessionRegistry reg;
  FakeDataplane dp(&reg, 5);
  dp.answer = [](uint64_t v) {
    zproxy::v1::DataplaneMessage m;
    m.mutable_ack()->set_version(v);
    return m;
  };
  Handover h;
  auto fill = [](const zproxy::v1::Config&, zproxy::v1::ConfigSnapshot* s) {
    s->add_health_slots()->set_slot(3);
  };
  state::OpStatus st = ApplyConfig(reg, 5, zproxy::v1::Config(), 9, fill, h.fn(), kFast);
  EXPECT_TRUE(st.ok()) << st.message;
  EXPECT_EQ(h.calls, 0);
  EXPECT_EQ(dp.last.version(), 9u);
  ASSERT_EQ(dp.last.health_slots_size(), 1);
}

TEST(ApplyConfig, NackFailsWithTheReason) {
  SessionRegistry reg;
  FakeDataplane dp(&reg, 5);
  dp.answer = [](uint64_t v) { return Nack(v, "clusters[1]: cannot resolve", false); };
  Handover h;
  state::OpStatus st = ApplyConfig(reg, 5, zproxy::v1::Config(), 9, nullptr, h.fn(), kFast);
  EXPECT_EQ(st.code, state::OpStatus::kFailedPrecondition);
  EXPECT_NE(st.message.find("clusters[1]: cannot resolve"), std::string::npos) << st.message;
  EXPECT_EQ(h.calls, 0);
}

TEST(ApplyConfig, NeedsRestartNoStreamAndTimeoutFallBackToHandover) {
  SessionRegistry reg;
  FakeDataplane dp(&reg, 5);
  dp.answer = [](uint64_t v) { return Nack(v, "workers: changed", true); };
  Handover h;
  EXPECT_TRUE(ApplyConfig(reg, 5, zproxy::v1::Config(), 9, nullptr, h.fn(), kFast).ok());
  EXPECT_EQ(h.calls, 1);
  // Pid 6 never connected.
  EXPECT_TRUE(ApplyConfig(reg, 6, zproxy::v1::Config(), 9, nullptr, h.fn(), kFast).ok());
  EXPECT_EQ(h.calls, 2);
  // No data plane at all.
  EXPECT_TRUE(ApplyConfig(reg, -1, zproxy::v1::Config(), 9, nullptr, h.fn(), kFast).ok());
  EXPECT_EQ(h.calls, 3);
  // The handover itself failing is UNAVAILABLE with its reason.
  h.ok = false;
  state::OpStatus st = ApplyConfig(reg, 6, zproxy::v1::Config(), 9, nullptr, h.fn(), kFast);
  EXPECT_EQ(st.code, state::OpStatus::kUnavailable);
  EXPECT_NE(st.message.find("new data plane exited"), std::string::npos) << st.message;
}

TEST(ResyncConfig, PushesAResyncAndHandsOverOnlyForNeedsRestart) {
  SessionRegistry reg;
  FakeDataplane dp(&reg, 5);
  dp.answer = [](uint64_t v) {
    zproxy::v1::DataplaneMessage m;
    m.mutable_ack()->set_version(v);
    return m;
  };
  Handover h;
  EXPECT_TRUE(ResyncConfig(reg, 5, 3, zproxy::v1::Config(), 9, nullptr, h.fn(), kFast).ok());
  EXPECT_TRUE(dp.last.resync());
  EXPECT_EQ(dp.last.version(), 9u);
  EXPECT_EQ(h.calls, 0);
  // An adopted data plane whose listeners differ: a new data plane takes over.
  dp.answer = [](uint64_t v) { return Nack(v, "listeners: 1 -> 2 listeners", true); };
  EXPECT_TRUE(ResyncConfig(reg, 5, 3, zproxy::v1::Config(), 9, nullptr, h.fn(), kFast).ok());
  EXPECT_EQ(h.calls, 1);
  // A plain NACK keeps what it serves; no stream waits for the next Hello. No handover.
  dp.answer = [](uint64_t v) { return Nack(v, "clusters[0]: cannot resolve", false); };
  EXPECT_EQ(ResyncConfig(reg, 5, 3, zproxy::v1::Config(), 9, nullptr, h.fn(), kFast).code,
            state::OpStatus::kFailedPrecondition);
  EXPECT_EQ(ResyncConfig(reg, 6, 3, zproxy::v1::Config(), 9, nullptr, h.fn(), kFast).code,
            state::OpStatus::kUnavailable);
  EXPECT_EQ(h.calls, 1);
}

}  // namespace
}  // namespace zproxy::sync
