#include "dataplane/sidecar/local_hop.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace zproxy::dataplane {
namespace {

// A connected loopback pair of `family`: {client, accepted}; both -1 when the family is
// unavailable (no IPv6 on lo).
struct Pair {
  int client = -1;
  int server = -1;
  ~Pair() {
    if (client >= 0) close(client);
    if (server >= 0) close(server);
  }
};

void Connect(int family, const char* ip, Pair* p) {
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a->sin6_addr);
    len = sizeof(*a);
  }
  int l = socket(family, SOCK_STREAM, 0);
  ASSERT_GE(l, 0);
  if (bind(l, reinterpret_cast<sockaddr*>(&ss), len) != 0 || listen(l, 1) != 0 ||
      getsockname(l, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    close(l);
    return;
  }
  p->client = socket(family, SOCK_STREAM, 0);
  ASSERT_EQ(connect(p->client, reinterpret_cast<sockaddr*>(&ss), len), 0);
  p->server = accept(l, nullptr, nullptr);
  close(l);
  ASSERT_GE(p->server, 0);
}

uint32_t Be(uint32_t v) { return htonl(v); }

TEST(LocalHop, Ipv4KeyIsV4MappedAndTheTwoEndsMirror) {
  Pair p;
  Connect(AF_INET, "127.0.0.1", &p);
  zproxy_lh_key c, s;
  ASSERT_TRUE(LocalHopKeyOf(p.client, &c));
  ASSERT_TRUE(LocalHopKeyOf(p.server, &s));
  // ::ffff:127.0.0.1, as the BPF program stores IPv4 (bpf/local_hops.bpf.c).
  uint32_t mapped[4] = {0, 0, Be(0xffff), Be(0x7f000001)};
  EXPECT_EQ(memcmp(c.local_ip, mapped, 16), 0);
  EXPECT_EQ(memcmp(c.remote_ip, mapped, 16), 0);
  EXPECT_EQ(c.local_port, s.remote_port);
  EXPECT_EQ(c.remote_port, s.local_port);
  EXPECT_NE(c.local_port, 0u);
}

TEST(LocalHop, Ipv6LoopbackIsLocal) {
  Pair p;
  Connect(AF_INET6, "::1", &p);
  if (p.client < 0) GTEST_SKIP() << "no ::1";
  zproxy_lh_key k;
  ASSERT_TRUE(LocalHopKeyOf(p.client, &k));
  uint32_t one[4] = {0, 0, 0, Be(1)};
  EXPECT_EQ(memcmp(k.local_ip, one, 16), 0);
}

TEST(LocalHop, NotConnectedOrNoMapIsNeverALocalHop) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  zproxy_lh_key k;
  EXPECT_FALSE(LocalHopKeyOf(s, &k));  // no peer
  close(s);
  Pair p;
  Connect(AF_INET, "127.0.0.1", &p);
  EXPECT_FALSE(IsLocalHop(-1, p.client));  // sk_msg off: no map fd
}

}  // namespace
}  // namespace zproxy::dataplane
