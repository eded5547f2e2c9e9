#include "controlplane/listen_sockets.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace zproxy::controlplane {
namespace {

zproxy::v1::Config OneListener(const std::string& address) {
  zproxy::v1::Config c;
  auto* l = c.add_listeners();
  l->set_name("web");
  l->set_address(address);
  return c;
}

int IntOpt(int fd, int level, int name) {
  int v = 0;
  socklen_t len = sizeof(v);
  getsockopt(fd, level, name, &v, &len);
  return v;
}

TEST(ListenSockets, OnePerWorkerSharingOnePort) {
  std::vector<ListenSocket> sockets;
  std::string error;
  ASSERT_TRUE(CreateListenSockets(OneListener("127.0.0.1:0"), 3, &sockets, &error)) << error;
  ASSERT_EQ(sockets.size(), 3u);
  for (uint32_t w = 0; w < 3; ++w) {
    const int fd = sockets[w].fd.get();
    EXPECT_EQ(sockets[w].worker, w);
    EXPECT_EQ(sockets[w].address, sockets[0].address);  // port 0 resolved once, then shared
    EXPECT_EQ(IntOpt(fd, SOL_SOCKET, SO_REUSEPORT), 1);
    EXPECT_EQ(IntOpt(fd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    EXPECT_TRUE(fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
  }
  EXPECT_NE(sockets[0].address, "127.0.0.1:0");
}

TEST(ListenSockets, Ipv6IsV6Only) {
  std::vector<ListenSocket> sockets;
  std::string error;
  if (!CreateListenSockets(OneListener("[::1]:0"), 1, &sockets, &error)) {
    GTEST_SKIP() << "no IPv6 loopback: " << error;
  }
  EXPECT_EQ(IntOpt(sockets[0].fd.get(), IPPROTO_IPV6, IPV6_V6ONLY), 1);
}

TEST(ListenSockets, AddressInUseNamesTheListener) {
  std::vector<ListenSocket> first;
  std::string error;
  ASSERT_TRUE(CreateListenSockets(OneListener("127.0.0.1:0"), 1, &first, &error)) << error;
  std::vector<ListenSocket> second;
  // Even though both would set SO_REUSEPORT, a second owner is refused.
  EXPECT_FALSE(CreateListenSockets(OneListener(first[0].address), 1, &second, &error));
  EXPECT_NE(
      error.find("listener \"web\": cannot bind " + first[0].address + ": Address already in use"),
      std::string::npos)
      << error;
}

}  // namespace
}  // namespace zproxy::controlplane
