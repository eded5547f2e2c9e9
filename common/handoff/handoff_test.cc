#include "common/handoff/handoff.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

namespace zproxy::handoff {
namespace {

using zproxy::v1::DataplaneBootstrap;

struct Pair {
  UniqueFd a, b;
};

Pair MakePair(int type) {
  int sv[2];
  EXPECT_EQ(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

UniqueFd ListenLoopback(uint16_t* port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(listen(fd.get(), 16), 0);
  socklen_t len = sizeof(a);
  getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return 0;
  return ntohs(a.sin_port);
}

DataplaneBootstrap Make(int sockets) {
  DataplaneBootstrap b;
  b.set_config_version(7);
  b.set_workers(2);
  auto* l = b.mutable_config()->add_listeners();
  l->set_name("web");
  l->set_address("127.0.0.1:8080");
  for (int i = 0; i < sockets; ++i) {
    auto* s = b.add_sockets();
    s->set_listener("web");
    s->set_worker(i);
  }
  return b;
}

class HandoffTest : public ::testing::TestWithParam<int> {};

TEST_P(HandoffTest, PassesConfigAndWorkingListenSockets) {
  Pair p = MakePair(GetParam());
  uint16_t port0, port1;
  UniqueFd l0 = ListenLoopback(&port0), l1 = ListenLoopback(&port1);
  int raw[] = {l0.get(), l1.get()};
  std::string error;
  ASSERT_TRUE(SendBootstrap(p.a.get(), Make(2), raw, &error)) << error;

  DataplaneBootstrap got;
  std::vector<UniqueFd> fds;
  ASSERT_TRUE(ReceiveBootstrap(p.b.get(), &got, &fds, &error, 1000)) << error;
  EXPECT_EQ(got.config_version(), 7u);
  EXPECT_EQ(got.workers(), 2u);
  EXPECT_EQ(got.config().listeners(0).address(), "127.0.0.1:8080");
  ASSERT_EQ(fds.size(), 2u);
  EXPECT_EQ(got.sockets(1).worker(), 1u);
  // Same order as sent, new fd numbers, close-on-exec.
  EXPECT_EQ(PortOf(fds[0].get()), port0);
  EXPECT_EQ(PortOf(fds[1].get()), port1);
  EXPECT_NE(fds[0].get(), l0.get());
  EXPECT_TRUE(fcntl(fds[0].get(), F_GETFD) & FD_CLOEXEC);

  // The received fd is the same listening socket: a connection shows up on it.
  l0.reset();
  UniqueFd c(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port0);
  ASSERT_EQ(connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  UniqueFd accepted(accept4(fds[0].get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(accepted.valid());
}

TEST_P(HandoffTest, ManyFdsAreChunked) {
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 4096);
  setrlimit(RLIMIT_NOFILE, &rl);
  const int n = rl.rlim_cur >= 2000 ? 600 : 300;  // > 2 chunks when the limit allows

  Pair p = MakePair(GetParam());
  uint16_t port;
  UniqueFd l = ListenLoopback(&port);
  std::vector<int> raw(n, l.get());  // the same socket n times is fine for SCM_RIGHTS
  DataplaneBootstrap sent = Make(n);
  // A payload over several pieces too.
  sent.mutable_config()->set_access_log(std::string(100000, 'x'));
  std::string send_error;
  bool sent_ok = false;
  std::thread sender([&] { sent_ok = SendBootstrap(p.a.get(), sent, raw, &send_error); });

  DataplaneBootstrap got;
  std::vector<UniqueFd> fds;
  std::string error;
  ASSERT_TRUE(ReceiveBootstrap(p.b.get(), &got, &fds, &error, 5000)) << error;
  sender.join();
  ASSERT_TRUE(sent_ok) << send_error;
  ASSERT_EQ(fds.size(), static_cast<size_t>(n));
  EXPECT_EQ(PortOf(fds[n - 1].get()), port);
  EXPECT_EQ(got.config().access_log().size(), 100000u);
  EXPECT_EQ(got.sockets(n - 1).worker(), static_cast<uint32_t>(n - 1));
}

TEST_P(HandoffTest, NoFds) {
  Pair p = MakePair(GetParam());
  std::string error;
  ASSERT_TRUE(SendBootstrap(p.a.get(), Make(0), {}, &error)) << error;
  DataplaneBootstrap got;
  std::vector<UniqueFd> fds;
  ASSERT_TRUE(ReceiveBootstrap(p.b.get(), &got, &fds, &error, 1000)) << error;
  EXPECT_TRUE(fds.empty());
}

TEST_P(HandoffTest, PeerClosedEarly) {
  Pair p = MakePair(GetParam());
  p.a.reset();
  DataplaneBootstrap got;
  std::vector<UniqueFd> fds;
  std::string error;
  EXPECT_FALSE(ReceiveBootstrap(p.b.get(), &got, &fds, &error, 1000));
  EXPECT_NE(error.find("control socket closed while receiving bootstrap header"), std::string::npos)
      << error;
}

TEST_P(HandoffTest, BadMagic) {
  Pair p = MakePair(GetParam());
  char junk[16] = "GET / HTTP/1.1\r";
  ASSERT_EQ(send(p.a.get(), junk, sizeof(junk), 0), 16);
  DataplaneBootstrap got;
  std::vector<UniqueFd> fds;
  std::string error;
  EXPECT_FALSE(ReceiveBootstrap(p.b.get(), &got, &fds, &error, 1000));
  EXPECT_NE(error.find("magic"), std::string::npos) << error;
}

TEST_P(HandoffTest, Timeout) {
  Pair p = MakePair(GetParam());
  DataplaneBootstrap got;
  std::vector<UniqueFd> fds;
  std::string error;
  EXPECT_FALSE(ReceiveBootstrap(p.b.get(), &got, &fds, &error, 50));
  EXPECT_NE(error.find("timed out"), std::string::npos) << error;
}

TEST_P(HandoffTest, SendToDeadPeerFailsWithoutSigpipe) {
  Pair p = MakePair(GetParam());
  p.b.reset();
  std::string error;
  EXPECT_FALSE(SendBootstrap(p.a.get(), Make(0), {}, &error));
  EXPECT_NE(error.find("send"), std::string::npos) << error;
}

INSTANTIATE_TEST_SUITE_P(SocketTypes, HandoffTest, ::testing::Values(SOCK_SEQPACKET, SOCK_STREAM),
                         [](const auto& info) {
                           return info.param == SOCK_STREAM ? "Stream" : "SeqPacket";
                         });

TEST(Handoff, FdCountMustMatchSockets) {
  Pair p = MakePair(SOCK_SEQPACKET);
  std::string error;
  int one[] = {0};
  EXPECT_FALSE(SendBootstrap(p.a.get(), Make(2), one, &error));
  EXPECT_EQ(error, "bootstrap announces 2 fds but 1 were given");
}

TEST(Handoff, HealthRegionFdTravelsAfterTheSockets) {
  Pair p = MakePair(SOCK_SEQPACKET);
  uint16_t port;
  UniqueFd l = ListenLoopback(&port);
  UniqueFd region(memfd_create("health-test", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(region.get(), 123), 0);
  DataplaneBootstrap sent = Make(1);
  sent.set_health_region_fd_index(1);
  EXPECT_EQ(ExpectedFdCount(sent), 2u);
  int raw[] = {l.get(), region.get()};
  std::string error;
  ASSERT_TRUE(SendBootstrap(p.a.get(), sent, raw, &error)) << error;
  DataplaneBootstrap got;
  std::vector<UniqueFd> fds;
  ASSERT_TRUE(ReceiveBootstrap(p.b.get(), &got, &fds, &error, 1000)) << error;
  ASSERT_EQ(fds.size(), 2u);
  ASSERT_TRUE(got.has_health_region_fd_index());
  EXPECT_EQ(PortOf(fds[0].get()), port);
  struct stat st;
  ASSERT_EQ(fstat(fds[got.health_region_fd_index()].get(), &st), 0);
  EXPECT_EQ(st.st_size, 123);
}

}  // namespace
}  // namespace zproxy::handoff
