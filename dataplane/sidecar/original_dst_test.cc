#include "dataplane/sidecar/original_dst.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

namespace zproxy::dataplane::sidecar {
namespace {

SockAddr V4(const char* ip, uint16_t port) {
  SockAddr a{};
  a.v4.sin_family = AF_INET;
  a.v4.sin_port = htons(port);
  inet_pton(AF_INET, ip, &a.v4.sin_addr);
  return a;
}

TEST(OriginalDst, FormatsBothFamilies) {
  char buf[64];
  EXPECT_EQ(Format(V4("127.0.0.2", 8000), buf, sizeof(buf)), "127.0.0.2:8000");
  SockAddr v6{};
  v6.v6.sin6_family = AF_INET6;
  v6.v6.sin6_port = htons(9000);
  inet_pton(AF_INET6, "::1", &v6.v6.sin6_addr);
  EXPECT_EQ(Format(v6, buf, sizeof(buf)), "[::1]:9000");
  EXPECT_EQ(Format(v6, buf, 5), "");  // does not fit: nothing, never a cut address
}

TEST(OriginalDst, SameAddressComparesFamilyAddressAndPort) {
  EXPECT_TRUE(SameAddress(V4("127.0.0.1", 1), V4("127.0.0.1", 1)));
  EXPECT_FALSE(SameAddress(V4("127.0.0.1", 1), V4("127.0.0.1", 2)));
  EXPECT_FALSE(SameAddress(V4("127.0.0.1", 1), V4("127.0.0.2", 1)));
}

// A connection made straight to the listener has no original destination to forward to:
// either conntrack tracks it unchanged (the listener's own address: a loop) or nothing
// tracks it at all. Never kSoOriginalDst.
TEST(OriginalDst, DirectConnectionIsNotRedirected) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  SockAddr any = V4("127.0.0.1", 0);
  ASSERT_EQ(bind(l, &any.sa, sizeof(any.v4)), 0);
  ASSERT_EQ(listen(l, 4), 0);
  SockAddr bound;
  socklen_t len = sizeof(bound);
  getsockname(l, &bound.sa, &len);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(c, &bound.sa, sizeof(bound.v4)), 0);
  SockAddr peer;
  len = sizeof(peer);
  int a = accept(l, &peer.sa, &len);
  ASSERT_GE(a, 0);
  SockAddr out;
  DstSource s = Recover(a, peer, -1, &out);
  EXPECT_TRUE(s == DstSource::kNotRedirected || s == DstSource::kUnknown) << DstSourceName(s);
  close(a);
  close(c);
  close(l);
}

}  // namespace
}  // namespace zproxy::dataplane::sidecar
