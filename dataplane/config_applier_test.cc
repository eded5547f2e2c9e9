// A real worker (io_uring, sockets on loopback) switching snapshots under traffic: new
// requests follow the new routes at once, a request in flight finishes on the cluster it
// started with, and changes that need new sockets are refused (needs_restart). Adoption:
// a new health region arrives over the adoption channel and the running snapshot reads it;
// a resync applies an older version.
#include "dataplane/config_applier.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "common/handoff/handoff.h"
#include "common/health_region.h"
#include "dataplane/sync/adoption_channel.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {
namespace {

int ListenLoopback(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(listen(fd, 128), 0);
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

// A minimal upstream: answers every request with its name, after `delay_ms`.
class Upstream {
 public:
  Upstream(std::string name, int delay_ms) : name_(std::move(name)), delay_ms_(delay_ms) {
    fd_ = ListenLoopback(&port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Upstream() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  uint16_t port() const { return port_; }

 private:
  void Serve() {
    while (!stop_) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::thread([this, c] {
        char buf[4096];
        while (recv(c, buf, sizeof(buf), 0) > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
          std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(name_.size()) +
                             "\r\n\r\n" + name_;
          send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
        }
        close(c);
      }).detach();
    }
  }
  std::string name_;
  int delay_ms_;
  int fd_;
  uint16_t port_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::string Get(uint16_t port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return "connect failed";
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? out : out.substr(body + 4);
}

zproxy::v1::Config MakeConfig(uint16_t listen_port, uint16_t slow, uint16_t a, uint16_t b,
                              const char* default_cluster) {
  zproxy::v1::Config c;
  auto* l = c.add_listeners();
  l->set_name("web");
  l->set_address("127.0.0.1:" + std::to_string(listen_port));
  auto* r = l->add_routes();
  r->mutable_match()->set_prefix("/slow");
  r->set_cluster("slow");
  r = l->add_routes();
  r->mutable_match()->set_prefix("/");
  r->set_cluster(default_cluster);
  for (auto [name, port] : {std::pair{"slow", slow}, {"a", a}, {"b", b}}) {
    auto* cl = c.add_clusters();
    cl->set_name(name);
    cl->add_endpoints()->set_address("127.0.0.1:" + std::to_string(port));
  }
  return c;
}

TEST(ConfigApplier, SwitchesRoutesLiveAndLetsInFlightRequestsFinish) {
  Upstream slow("slow", 400), a("a", 0), b("b", 0);
  uint16_t port;
  int lfd = ListenLoopback(&port);
  std::string err;
  auto snap1 = BuildSnapshot(MakeConfig(port, slow.port(), a.port(), b.port(), "a"), 1, &err);
  ASSERT_NE(snap1, nullptr) << err;
  WorkerOptions opt;
  opt.ring.sq_depth = 256;
  opt.ring.max_files = 256;
  opt.buf_count = 64;
  opt.buf_size = 4096;
  Worker worker(opt, snap1, {WorkerListenSocket{lfd, 0}});
  std::atomic<bool> ready{false};
  std::thread loop([&] {
    std::string e;
    ASSERT_TRUE(worker.Init(&e)) << e;
    ready = true;
    worker.Run();
  });
  while (!ready) std::this_thread::yield();
  ConfigApplier applier({&worker}, snap1, nullptr);

  EXPECT_EQ(Get(port, "/x"), "a");
  // A slow request in flight on the "slow" cluster while the config changes: the slow
  // cluster is redefined (different endpoint list), so its old state must stay alive
  // until this request is done.
  std::string slow_answer;
  std::thread inflight([&] { slow_answer = Get(port, "/slow"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));

  zproxy::v1::ConfigSnapshot next;
  next.set_version(2);
  *next.mutable_config() = MakeConfig(port, slow.port(), a.port(), b.port(), "b");
  next.mutable_config()->mutable_clusters(0)->add_endpoints()->set_address(
      "127.0.0.1:" + std::to_string(slow.port()));
  ConfigApplier::Result r = applier.Apply(next);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_LT(r.apply_us, 100000u);
  EXPECT_EQ(applier.version(), 2u);
  EXPECT_EQ(Get(port, "/x"), "b");  // the very next request follows the new route
  inflight.join();
  EXPECT_EQ(slow_answer, "slow");

  // DNS discovery found other addresses for cluster b: the same version, as an endpoints
  // refresh (accepted only for the running version).
  zproxy::v1::ConfigSnapshot refresh = next;
  refresh.set_endpoints_refresh(true);
  refresh.mutable_config()->mutable_clusters(2)->mutable_endpoints(0)->set_address(
      "127.0.0.1:" + std::to_string(a.port()));
  r = applier.Apply(refresh);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(applier.version(), 2u);
  EXPECT_EQ(Get(port, "/x"), "a");  // cluster b's endpoint is now a's address
  refresh.set_version(1);
  ConfigApplier::Result old_refresh = applier.Apply(refresh);
  EXPECT_FALSE(old_refresh.ok);
  EXPECT_NE(old_refresh.reason.find("version 2 is running"), std::string::npos)
      << old_refresh.reason;
  refresh.set_version(2);
  refresh.mutable_config()->mutable_clusters(2)->mutable_endpoints(0)->set_address(
      "127.0.0.1:" + std::to_string(b.port()));
  ASSERT_TRUE(applier.Apply(refresh).ok);
  EXPECT_EQ(Get(port, "/x"), "b");

  // Stale versions and changes that need new sockets are refused; the old config stays.
  ConfigApplier::Result stale = applier.Apply(next);
  EXPECT_FALSE(stale.ok);
  EXPECT_NE(stale.reason.find("not newer"), std::string::npos) << stale.reason;
  zproxy::v1::ConfigSnapshot moved = next;
  moved.set_version(3);
  moved.mutable_config()->mutable_listeners(0)->set_address("127.0.0.1:1");
  ConfigApplier::Result m = applier.Apply(moved);
  EXPECT_FALSE(m.ok);
  EXPECT_TRUE(m.needs_restart);
  EXPECT_NE(m.reason.find("listeners[0].address"), std::string::npos) << m.reason;
  zproxy::v1::ConfigSnapshot bad = next;
  bad.set_version(4);
  bad.mutable_config()->mutable_listeners(0)->mutable_routes(1)->set_cluster("nope");
  ConfigApplier::Result br = applier.Apply(bad);
  EXPECT_FALSE(br.ok);
  EXPECT_FALSE(br.needs_restart);
  EXPECT_NE(br.reason.find("nope"), std::string::npos) << br.reason;
  EXPECT_EQ(Get(port, "/x"), "b");

  worker.Stop(100);
  loop.join();
  close(lfd);
}

// One cluster "app" with endpoints a (slot 0) and b (slot 1), read from `region`.
std::shared_ptr<Snapshot> HealthSnapshot(uint16_t port, uint16_t a, uint16_t b, uint64_t version,
                                         std::shared_ptr<const HealthRegion> region) {
  zproxy::v1::Config c;
  auto* l = c.add_listeners();
  l->set_name("web");
  l->set_address("127.0.0.1:" + std::to_string(port));
  auto* r = l->add_routes();
  r->mutable_match()->set_prefix("/");
  r->set_cluster("app");
  auto* cl = c.add_clusters();
  cl->set_name("app");
  cl->add_endpoints()->set_address("127.0.0.1:" + std::to_string(a));
  cl->add_endpoints()->set_address("127.0.0.1:" + std::to_string(b));
  HealthSlotTable slots;
  slots.Add("app", cl->endpoints(0).address(), 0);
  slots.Add("app", cl->endpoints(1).address(), 1);
  std::string err;
  auto snap = BuildSnapshot(c, version, &err, std::move(region), &slots);
  EXPECT_NE(snap, nullptr) << err;
  return snap;
}

TEST(ConfigApplier, AdoptionChannelRebindsHealthAndResyncTakesAnOlderVersion) {
  Upstream a("a", 0), b("b", 0);
  uint16_t port;
  int lfd = ListenLoopback(&port);
  std::string err;
  auto old_region = std::make_shared<HealthRegion>();
  ASSERT_TRUE(HealthRegion::Create(8, old_region.get(), &err)) << err;
  old_region->Set(0, false);  // the dead zproxyd's last verdict: a is down
  auto snap = HealthSnapshot(port, a.port(), b.port(), 5, old_region);
  WorkerOptions opt;
  opt.ring.sq_depth = 256;
  opt.ring.max_files = 256;
  opt.buf_count = 64;
  opt.buf_size = 4096;
  Worker worker(opt, snap, {WorkerListenSocket{lfd, 0}});
  std::atomic<bool> ready{false};
  std::thread loop([&] {
    std::string e;
    ASSERT_TRUE(worker.Init(&e)) << e;
    ready = true;
    worker.Run();
  });
  while (!ready) std::this_thread::yield();
  HealthSlotTable slots;
  for (const auto& [key, slot] : std::map<std::pair<std::string, std::string>, uint32_t>{
           {{"app", "127.0.0.1:" + std::to_string(a.port())}, 0},
           {{"app", "127.0.0.1:" + std::to_string(b.port())}, 1}}) {
    slots.Add(key.first, key.second, slot);
  }
  ConfigApplier applier({&worker}, snap, old_region, slots);
  for (int i = 0; i < 4; i++) EXPECT_EQ(Get(port, "/"), "b");
  auto states = applier.HealthStates();
  ASSERT_EQ(states.size(), 2u);
  EXPECT_FALSE(states[0].slot == 0 ? states[0].healthy : states[1].healthy);

  // A new zproxyd hands over its own region (b down now), as it would on its copy of the
  // channel's far end.
  AdoptionChannel channel(&applier);
  ASSERT_TRUE(channel.Start(&err)) << err;
  HealthRegion fresh;
  ASSERT_TRUE(HealthRegion::Create(8, &fresh, &err)) << err;
  fresh.Set(1, false);
  zproxy::v1::DataplaneBootstrap message;
  for (auto [slot, p] : {std::pair{0u, a.port()}, {1u, b.port()}}) {
    auto* s = message.add_health_slots();
    s->set_cluster("app");
    s->set_address("127.0.0.1:" + std::to_string(p));
    s->set_slot(slot);
  }
  message.set_health_region_fd_index(0);
  message.set_health_region_kind(zproxy::v1::HEALTH_REGION_MEMFD);
  const int fds[] = {fresh.fd()};
  ASSERT_TRUE(handoff::SendBootstrap(channel.remote_fd(), message, fds, &err)) << err;
  char answer = 0;
  ASSERT_EQ(recv(channel.remote_fd(), &answer, 1, 0), 1);
  EXPECT_EQ(answer, 'R');
  for (int i = 0; i < 4; i++) EXPECT_EQ(Get(port, "/"), "a");
  EXPECT_EQ(applier.version(), 5u);  // same config, same version
  fresh.Set(1, true);                // the new writer's transitions are seen
  std::set<std::string> seen;
  for (int i = 0; i < 4; i++) seen.insert(Get(port, "/"));
  EXPECT_EQ(seen, (std::set<std::string>{"a", "b"}));

  // Resync: zproxyd's current version may be older than what the data plane runs (its
  // state was lost): accepted only as a resync.
  zproxy::v1::ConfigSnapshot older;
  older.set_version(3);
  *older.mutable_config() = snap->config;
  EXPECT_FALSE(applier.Apply(older).ok);
  older.set_resync(true);
  ConfigApplier::Result r = applier.Apply(older);
  ASSERT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(applier.version(), 3u);

  channel.Stop();
  worker.Stop(100);
  loop.join();
  close(lfd);
}

}  // namespace
}  // namespace zproxy::dataplane
