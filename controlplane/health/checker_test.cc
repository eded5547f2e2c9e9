// The checker against real loopback sockets: listeners, refused ports, HTTP responders
// with changing statuses, and a peer that never answers.
#include "controlplane/health/checker.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "controlplane/health/test_servers.h"
#include "gtest/gtest.h"

namespace zproxy::health {
namespace {

using std::chrono::milliseconds;
using testing::ClosedAddress;
using testing::HttpResponder;
using testing::SilentListener;

struct Transition {
  std::string address;
  bool healthy;
  std::string reason;
};

class CheckerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(HealthRegion::Create(64, &region_, &error)) << error;
    checker_ = std::make_unique<HealthChecker>(
        &region_, [this](const std::string&, const std::string& address, bool healthy,
                         const std::string& reason) {
          std::lock_guard<std::mutex> lock(mu_);
          transitions_.push_back({address, healthy, reason});
          cv_.notify_all();
        });
    ASSERT_TRUE(checker_->Start(&error)) << error;
  }
  void TearDown() override { checker_->Stop(); }

  static CheckTarget Target(const std::string& address, uint32_t slot,
                            const std::string& http_path = "") {
    CheckTarget t;
    t.cluster = "app";
    t.address = address;
    std::string error;
    EXPECT_TRUE(ParseNetAddress(address, &t.resolved, &error)) << error;
    t.slot = slot;
    t.spec.http_path = http_path;
    t.spec.host = address;
    t.interval_ms = 30;
    t.timeout_ms = 200;
    t.healthy_threshold = 1;
    t.unhealthy_threshold = 1;
    return t;
  }

  // Waits for the n-th transition (1-based) and returns it.
  Transition WaitTransition(size_t n, milliseconds timeout = milliseconds(3000)) {
    std::unique_lock<std::mutex> lock(mu_);
    bool ok = cv_.wait_for(lock, timeout, [&] { return transitions_.size() >= n; });
    EXPECT_TRUE(ok) << "no transition #" << n << " within " << timeout.count() << " ms";
    return ok ? transitions_[n - 1] : Transition{"", true, "none"};
  }
  size_t TransitionCount() {
    std::lock_guard<std::mutex> lock(mu_);
    return transitions_.size();
  }
  // Waits until the target has a result of its own (the first probe finished).
  EndpointHealth WaitProbed(milliseconds timeout = milliseconds(3000)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto s = checker_->States();
      if (!s.empty() && !s[0].last_result.empty()) return s[0];
      std::this_thread::sleep_for(milliseconds(5));
    }
    ADD_FAILURE() << "no probe result within " << timeout.count() << " ms";
    return {};
  }

  HealthRegion region_;
  std::unique_ptr<HealthChecker> checker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Transition> transitions_;
};

TEST_F(CheckerTest, AcceptingListenerStaysHealthy) {
  SilentListener listener;
  checker_->Update({Target(listener.address(), 3)});
  EndpointHealth h = WaitProbed();
  EXPECT_TRUE(h.healthy);
  EXPECT_EQ(h.last_result, "tcp connect ok");
  std::this_thread::sleep_for(milliseconds(150));  // several more probes
  EXPECT_EQ(TransitionCount(), 0u);
  EXPECT_TRUE(region_.Healthy(3));
}

TEST_F(CheckerTest, ClosedPortUnhealthyAfterThreshold) {
  CheckTarget t = Target(ClosedAddress(), 5);
  t.unhealthy_threshold = 3;
  const auto before = std::chrono::system_clock::now();
  checker_->Update({t});
  Transition tr = WaitTransition(1);
  EXPECT_FALSE(tr.healthy);
  EXPECT_NE(tr.reason.find("refused"), std::string::npos) << tr.reason;
  EXPECT_NE(tr.reason.find("3 consecutive failures"), std::string::npos) << tr.reason;
  EXPECT_FALSE(region_.Healthy(5));
  auto s = checker_->States();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_FALSE(s[0].healthy);
  // What GetHealth reports: the last result, the counters, and the times, in order.
  EXPECT_FALSE(s[0].last_ok);
  EXPECT_NE(s[0].last_result.find("refused"), std::string::npos) << s[0].last_result;
  EXPECT_GE(s[0].failures, 3u);
  EXPECT_EQ(s[0].successes, 0u);
  EXPECT_GE(s[0].checking_since, before);
  EXPECT_GE(s[0].last_transition, s[0].checking_since);
  EXPECT_GE(s[0].last_check, s[0].last_transition);
  EXPECT_LE(s[0].last_check, std::chrono::system_clock::now());
}

TEST_F(CheckerTest, HttpStatusDecidesAndRecoversAfterHealthyThreshold) {
  HttpResponder server(500);
  CheckTarget t = Target(server.address(), 7, "/healthz");
  t.unhealthy_threshold = 2;
  t.healthy_threshold = 3;
  checker_->Update({t});
  Transition down = WaitTransition(1);
  EXPECT_FALSE(down.healthy);
  EXPECT_NE(down.reason.find("HTTP 500"), std::string::npos) << down.reason;
  EXPECT_FALSE(region_.Healthy(7));
  const std::string req = server.last_request();
  EXPECT_EQ(req.rfind("GET /healthz HTTP/1.1\r\n", 0), 0u) << req;
  EXPECT_NE(req.find("\r\nHost: " + server.address() + "\r\n"), std::string::npos) << req;
  EXPECT_NE(req.find("\r\nConnection: close\r\n"), std::string::npos) << req;

  const int before = server.requests();
  server.set_status(200);
  Transition up = WaitTransition(2);
  EXPECT_TRUE(up.healthy);
  EXPECT_NE(up.reason.find("3 consecutive successes"), std::string::npos) << up.reason;
  EXPECT_GE(server.requests() - before, 3);
  EXPECT_TRUE(region_.Healthy(7));
  auto s = checker_->States();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0].last_ok);
  EXPECT_GE(s[0].successes, 3u);
  EXPECT_EQ(s[0].failures, 0u);
  EXPECT_NE(s[0].last_transition, EndpointHealth::Time{});
}

TEST_F(CheckerTest, ExpectedStatusesOverrideTheDefault) {
  HttpResponder server(503);
  CheckTarget t = Target(server.address(), 1, "/ready");
  t.spec.expected_statuses = {200, 503};
  checker_->Update({t});
  EndpointHealth h = WaitProbed();
  EXPECT_TRUE(h.healthy);
  EXPECT_EQ(h.last_result, "HTTP 503");
  server.set_status(200);
  std::this_thread::sleep_for(milliseconds(100));
  server.set_status(301);  // not in the list: unhealthy although 3xx is the default's
  Transition tr = WaitTransition(1);
  EXPECT_FALSE(tr.healthy);
  EXPECT_NE(tr.reason.find("HTTP 301"), std::string::npos) << tr.reason;
}

TEST_F(CheckerTest, SilentPeerTimesOut) {
  SilentListener listener;  // the TCP handshake completes, no HTTP answer ever comes
  CheckTarget t = Target(listener.address(), 2, "/healthz");
  t.timeout_ms = 100;
  const auto start = std::chrono::steady_clock::now();
  checker_->Update({t});
  Transition tr = WaitTransition(1);
  EXPECT_FALSE(tr.healthy);
  EXPECT_NE(tr.reason.find("timeout after 100 ms"), std::string::npos) << tr.reason;
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(100));
}

TEST_F(CheckerTest, UpdateKeepsStateOfUnchangedTargetsAndDropsRemoved) {
  std::string dead = ClosedAddress();
  checker_->Update({Target(dead, 4)});
  ASSERT_FALSE(WaitTransition(1).healthy);
  SilentListener listener;
  checker_->Update({Target(dead, 4), Target(listener.address(), 9)});
  std::this_thread::sleep_for(milliseconds(150));
  auto s = checker_->States();
  ASSERT_EQ(s.size(), 2u);
  for (const auto& e : s) EXPECT_EQ(e.healthy, e.address != dead) << e.address;
  EXPECT_EQ(TransitionCount(), 1u) << "the kept target must not start over as healthy";
  EXPECT_FALSE(region_.Healthy(4));

  checker_->Update({});
  for (int i = 0; i < 100 && !checker_->States().empty(); i++) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_TRUE(checker_->States().empty());
}

// GetHealth reads States() from gRPC threads while the loop probes and publishes: the copy
// is taken under the checker's lock (run under -fsanitize=thread to see no race).
TEST_F(CheckerTest, StatesReadWhileProbing) {
  HttpResponder server(200);
  checker_->Update({Target(server.address(), 1, "/healthz"), Target(ClosedAddress(), 2)});
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 2; i++) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        for (const EndpointHealth& h : checker_->States()) {
          EXPECT_TRUE(h.cluster == "app");
          if (h.last_check != EndpointHealth::Time{}) EXPECT_GE(h.last_check, h.checking_since);
        }
        reads++;
      }
    });
  }
  Transition down = WaitTransition(1);
  EXPECT_FALSE(down.healthy);
  // Updates race the readers too (targets replaced while being copied out).
  checker_->Update({Target(server.address(), 1, "/healthz")});
  std::this_thread::sleep_for(milliseconds(100));
  stop = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(reads.load(), 0);
  auto s = checker_->States();
  ASSERT_EQ(s.size(), 1u);
  EXPECT_TRUE(s[0].last_ok);
}

TEST_F(CheckerTest, ManyTargetsOneThread) {
  // 200 endpoints (half refused, half listening) are all decided by the single loop.
  std::vector<SilentListener> listeners(100);
  std::vector<CheckTarget> targets;
  for (uint32_t i = 0; i < 100; i++) targets.push_back(Target(listeners[i].address(), i % 64));
  std::string dead = ClosedAddress();
  for (uint32_t i = 0; i < 100; i++) {
    CheckTarget t = Target(dead, 0);
    t.cluster = "c" + std::to_string(i);  // distinct keys, same dead endpoint
    targets.push_back(t);
  }
  checker_->Update(targets);
  WaitTransition(100, milliseconds(5000));
  std::this_thread::sleep_for(milliseconds(100));
  size_t healthy = 0;
  for (const auto& e : checker_->States()) healthy += e.healthy;
  EXPECT_EQ(healthy, 100u);
  EXPECT_EQ(TransitionCount(), 100u);
}

}  // namespace
}  // namespace zproxy::health
