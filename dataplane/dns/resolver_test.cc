#include "dataplane/dns/resolver.h"

#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <string>

namespace zproxy::dataplane::dns {
namespace {

// A fake DNS: answers from a table after an optional gate opens, counts lookups.
struct FakeDns {
  std::mutex mu;
  std::condition_variable cv;
  bool open = true;
  std::map<std::string, int> calls;
  int Lookup(const char* name, Addrs* out) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return open; });
    calls[name]++;
    *out = Addrs();
    if (std::string(name) == "nx.invalid") return EAI_NONAME;
    out->a[0].family = AF_INET;
    out->a[0].bytes[0] = 127;
    out->a[0].bytes[3] = static_cast<uint8_t>(calls[name]);  // tells lookups apart
    out->count = 1;
    return 0;
  }
  void Set(bool o) {
    {
      std::lock_guard<std::mutex> lock(mu);
      open = o;
    }
    cv.notify_all();
  }
  int Calls(const std::string& n) {
    std::lock_guard<std::mutex> lock(mu);
    return calls[n];
  }
};

class ResolverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    efd_ = eventfd(0, EFD_CLOEXEC);
    inbox_ = std::make_shared<Inbox>(efd_);
  }
  void TearDown() override {
    inbox_->Close();
    close(efd_);
  }
  std::unique_ptr<Resolver> Make(uint32_t max_pending = 4, uint32_t max_cache = 16) {
    Resolver::Options o;
    o.max_pending = max_pending;
    o.max_cache = max_cache;
    o.lookup = [this](const char* n, Addrs* out) { return dns_.Lookup(n, out); };
    auto r = std::make_unique<Resolver>(std::move(o));
    r->Start();
    return r;
  }
  // Waits for `n` answers (the eventfd wakes, as it wakes a worker).
  std::vector<Answer> Wait(size_t n) {
    std::vector<Answer> all, some;
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (all.size() < n && std::chrono::steady_clock::now() < until) {
      uint64_t v;
      if (read(efd_, &v, sizeof(v)) != sizeof(v)) break;
      inbox_->Take(&some);
      all.insert(all.end(), some.begin(), some.end());
    }
    return all;
  }
  FakeDns dns_;
  int efd_ = -1;
  std::shared_ptr<Inbox> inbox_;
};

TEST_F(ResolverTest, QueuesThenCaches) {
  auto r = Make();
  Addrs out;
  EXPECT_EQ(r->Resolve("a.test", 10000, 1000, 5000, inbox_, 7, &out), Resolver::Result::kQueued);
  auto got = Wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].token, 7u);
  EXPECT_EQ(got[0].addrs.error, 0);
  ASSERT_EQ(got[0].addrs.count, 1);
  EXPECT_EQ(got[0].addrs.a[0].bytes[3], 1);
  // Second ask: from the cache, no lookup.
  EXPECT_EQ(r->Resolve("a.test", 10000, 1000, 5000, inbox_, 8, &out), Resolver::Result::kHit);
  EXPECT_EQ(out.a[0].bytes[3], 1);
  EXPECT_EQ(dns_.Calls("a.test"), 1);
  EXPECT_EQ(r->stats().lookups_ok.load(), 1u);
  // A listener with a shorter cache time sees the entry as stale: looked up again.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(r->Resolve("a.test", 10, 1000, 5000, inbox_, 9, &out), Resolver::Result::kQueued);
  got = Wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].addrs.a[0].bytes[3], 2);
  EXPECT_EQ(dns_.Calls("a.test"), 2);
}

TEST_F(ResolverTest, NegativeCache) {
  auto r = Make();
  Addrs out;
  EXPECT_EQ(r->Resolve("nx.invalid", 10000, 10000, 5000, inbox_, 1, &out),
            Resolver::Result::kQueued);
  auto got = Wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].addrs.error, EAI_NONAME);
  EXPECT_EQ(got[0].addrs.count, 0);
  EXPECT_STREQ(ErrorText(got[0].addrs.error), "no such host");
  EXPECT_EQ(r->Resolve("nx.invalid", 10000, 10000, 5000, inbox_, 2, &out), Resolver::Result::kHit);
  EXPECT_EQ(out.error, EAI_NONAME);
  EXPECT_EQ(r->stats().lookups_failed.load(), 1u);
  // Negative entries expire on their own clock.
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(r->Resolve("nx.invalid", 10000, 10, 5000, inbox_, 3, &out), Resolver::Result::kQueued);
  Wait(1);
  EXPECT_EQ(dns_.Calls("nx.invalid"), 2);
}

TEST_F(ResolverTest, FullQueueRefusesAtOnceAndCoalesces) {
  dns_.Set(false);  // the first lookup blocks: the rest stays queued
  auto r = Make(/*max_pending=*/2);
  Addrs out;
  EXPECT_EQ(r->Resolve("slow.test", 10000, 1000, 5000, inbox_, 1, &out), Resolver::Result::kQueued);
  // Wait until the thread has taken it (the queue is empty again, the lookup blocked).
  for (int i = 0; i < 500 && r->stats().queue_depth.load() != 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(r->Resolve("slow.test", 10000, 1000, 5000, inbox_, 2, &out), Resolver::Result::kQueued);
  EXPECT_EQ(r->Resolve("slow.test", 10000, 1000, 5000, inbox_, 3, &out), Resolver::Result::kQueued);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(r->Resolve("other.test", 10000, 1000, 5000, inbox_, 4, &out),
            Resolver::Result::kQueueFull);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  dns_.Set(true);
  auto got = Wait(3);
  ASSERT_EQ(got.size(), 3u);
  for (const Answer& a : got) EXPECT_EQ(a.addrs.count, 1) << a.token;
  EXPECT_EQ(dns_.Calls("slow.test"), 1);  // the queued duplicates took the first answer
  EXPECT_EQ(r->stats().coalesced.load(), 2u);
}

TEST_F(ResolverTest, ExpiredRequestsAreSkippedAndClosedInboxesDropAnswers) {
  dns_.Set(false);
  auto r = Make();
  Addrs out;
  EXPECT_EQ(r->Resolve("first.test", 10000, 1000, 5000, inbox_, 1, &out),
            Resolver::Result::kQueued);
  for (int i = 0; i < 500 && r->stats().queue_depth.load() != 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Queued with a 1 ms deadline behind the blocked lookup: never resolved.
  EXPECT_EQ(r->Resolve("late.test", 10000, 1000, 1, inbox_, 2, &out), Resolver::Result::kQueued);
  auto gone = std::make_shared<Inbox>(efd_);
  EXPECT_EQ(r->Resolve("gone.test", 10000, 1000, 5000, gone, 3, &out), Resolver::Result::kQueued);
  gone->Close();  // its worker went away
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  dns_.Set(true);
  auto got = Wait(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].token, 1u);
  for (int i = 0; i < 500 && dns_.Calls("gone.test") == 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(dns_.Calls("late.test"), 0);
  EXPECT_EQ(r->stats().expired.load(), 1u);
  std::vector<Answer> rest;
  gone->Take(&rest);
  EXPECT_TRUE(rest.empty());
}

TEST_F(ResolverTest, CacheIsBounded) {
  auto r = Make(/*max_pending=*/64, /*max_cache=*/4);
  Addrs out;
  for (int i = 0; i < 10; i++) {
    std::string n = "n" + std::to_string(i) + ".test";
    ASSERT_EQ(r->Resolve(n, 100000, 1000, 5000, inbox_, i, &out), Resolver::Result::kQueued);
    Wait(1);
  }
  EXPECT_LE(r->stats().cache_entries.load(), 4u);
  // The newest names are still cached.
  EXPECT_EQ(r->Resolve("n9.test", 100000, 1000, 5000, inbox_, 99, &out), Resolver::Result::kHit);
}

TEST(GetAddrInfo, Localhost) {
  Addrs out;
  ASSERT_EQ(Resolver::GetAddrInfo("localhost", &out), 0);
  ASSERT_GE(out.count, 1);
  bool loopback = false;
  for (uint8_t i = 0; i < out.count; i++) {
    loopback |= out.a[i].family == AF_INET && out.a[i].bytes[0] == 127;
    loopback |= out.a[i].family == AF_INET6 && out.a[i].bytes[15] == 1;
  }
  EXPECT_TRUE(loopback);
  EXPECT_NE(Resolver::GetAddrInfo("nonexistent.invalid", &out), 0);
  EXPECT_EQ(out.count, 0);
}

}  // namespace
}  // namespace zproxy::dataplane::dns
