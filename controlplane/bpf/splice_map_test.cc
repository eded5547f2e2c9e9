// Kernel splicing for real: pairs A<->B and C<->D on loopback; B and C go into the SOCKHASH
// as peers, so what A writes arrives at D and what D writes arrives at A, intact, while
// nobody reads B or C.
#include "controlplane/bpf/splice_map.h"

#include <bpf/bpf.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <thread>
#include <vector>

#include "controlplane/bpf/test_util.h"
#include "gtest/gtest.h"

namespace zproxy::controlplane::bpf {
namespace {

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// Writes `data` on `from` (from a thread) and reads it back on `to`, 5 s at most.
std::vector<uint8_t> Transfer(int from, int to, const std::vector<uint8_t>& data) {
  std::thread writer([&] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(from, data.data() + off, data.size() - off);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  });
  std::vector<uint8_t> got;
  std::vector<uint8_t> buf(65536);
  while (got.size() < data.size()) {
    pollfd p{to, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) break;
    ssize_t n = read(to, buf.data(), buf.size());
    if (n <= 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + n);
  }
  writer.join();
  return got;
}

class SpliceMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(map_.Load(BpfOptions{}, &error)) << error;
  }
  SpliceMap map_;
};

TEST_F(SpliceMapTest, OneMegabyteEachWayArrivesIntactAndIsCounted) {
  auto [a, b] = testing::TcpPair();
  auto [d, c] = testing::TcpPair();  // d: client, c: accepted
  std::string error;
  ASSERT_TRUE(AddPair(map_.pairs_fd(), map_.peer_fd(), b.get(), c.get(), &error)) << error;

  auto forward = RandomBytes(1 << 20, 1);
  EXPECT_EQ(Transfer(a.get(), d.get(), forward), forward);
  auto backward = RandomBytes(1 << 20, 2);
  EXPECT_EQ(Transfer(d.get(), a.get(), backward), backward);

  zproxy_splice_counters counters;
  ASSERT_TRUE(ReadSpliceCounters(map_.counters_fd(), &counters));
  EXPECT_EQ(counters.spliced_bytes, 2u << 20);
  EXPECT_GT(counters.spliced_packets, 0u);
  EXPECT_EQ(counters.redirect_errors, 0u);
  EXPECT_EQ(counters.no_peer, 0u);
}

// Keyed by socket cookie: IPv6 pairs and mixed pairs (an IPv6 client spliced to an IPv4
// upstream) splice like IPv4 ones.
TEST_F(SpliceMapTest, Ipv6AndMixedPairsSplice) {
  for (int upstream_family : {AF_INET6, AF_INET}) {
    auto [a, b] = testing::TcpPair(AF_INET6);
    auto [d, c] = testing::TcpPair(upstream_family);
    ASSERT_TRUE(a.valid() && c.valid()) << "no IPv6 loopback";
    std::string error;
    ASSERT_TRUE(AddPair(map_.pairs_fd(), map_.peer_fd(), b.get(), c.get(), &error)) << error;
    auto forward = RandomBytes(1 << 20, 3);
    EXPECT_EQ(Transfer(a.get(), d.get(), forward), forward);
    auto backward = RandomBytes(1 << 20, 4);
    EXPECT_EQ(Transfer(d.get(), a.get(), backward), backward);
  }
  zproxy_splice_counters counters;
  ASSERT_TRUE(ReadSpliceCounters(map_.counters_fd(), &counters));
  EXPECT_EQ(counters.spliced_bytes, 4u << 20);
}

// bpftool and the data plane agree on the key: a userspace lookup in zproxy_pair_peer by
// b's cookie returns c's cookie (what `bpftool map dump` prints as the value).
TEST_F(SpliceMapTest, PeerTableMapsCookieToPeerCookie) {
  auto [a, b] = testing::TcpPair();
  auto [d, c] = testing::TcpPair(AF_INET6);
  std::string error;
  ASSERT_TRUE(AddPair(map_.pairs_fd(), map_.peer_fd(), b.get(), c.get(), &error)) << error;
  zproxy_sock_key kb, kc;
  ASSERT_TRUE(SockKeyOf(b.get(), &kb));
  ASSERT_TRUE(SockKeyOf(c.get(), &kc));
  EXPECT_NE(kb.cookie, kc.cookie);
  uint64_t value = 0;
  ASSERT_EQ(bpf_map_lookup_elem(map_.peer_fd(), &kb, &value), 0);
  EXPECT_EQ(value, kc.cookie);
  ASSERT_EQ(bpf_map_lookup_elem(map_.pairs_fd(), &kc, &value), 0);
  EXPECT_EQ(value, kc.cookie);
  // Closing a socket drops every entry holding it, in both maps, with no help.
  c.reset();
  usleep(20000);
  EXPECT_NE(bpf_map_lookup_elem(map_.peer_fd(), &kb, &value), 0);
  EXPECT_NE(bpf_map_lookup_elem(map_.pairs_fd(), &kc, &value), 0);
  EXPECT_EQ(bpf_map_lookup_elem(map_.pairs_fd(), &kb, &value), 0);  // b is still open
}

TEST_F(SpliceMapTest, RemovePairLeavesNoEntries) {
  auto [a, b] = testing::TcpPair();
  auto [d, c] = testing::TcpPair();
  std::string error;
  ASSERT_TRUE(AddPair(map_.pairs_fd(), map_.peer_fd(), b.get(), c.get(), &error)) << error;
  zproxy_sock_key kb, kc, next;
  ASSERT_TRUE(SockKeyOf(b.get(), &kb));
  ASSERT_TRUE(SockKeyOf(c.get(), &kc));
  RemovePair(map_.pairs_fd(), map_.peer_fd(), kb, kc);
  EXPECT_NE(bpf_map_get_next_key(map_.peer_fd(), nullptr, &next), 0);
  EXPECT_NE(bpf_map_get_next_key(map_.pairs_fd(), nullptr, &next), 0);
  // Unpaired again: bytes stay with userspace on B.
  ASSERT_EQ(write(a.get(), "x", 1), 1);
  pollfd p{b.get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 2000), 1);
}

// What the data plane's sockmap mode relies on (dataplane/tunnel/sockmap.cc):
// bytes queued before the insertion are not redirected by the insertion itself, but the
// SO_RCVLOWAT kick (GateVerdict) runs the program over them, in order; a FIN is not
// redirected (the source socket polls readable with POLLRDHUP and userspace forwards it).
TEST_F(SpliceMapTest, QueuedBytesWaitForTheKickAndFinStaysWithUserspace) {
  auto [a, b] = testing::TcpPair();
  auto [d, c] = testing::TcpPair();
  ASSERT_EQ(write(a.get(), "early", 5), 5);
  ASSERT_EQ(write(d.get(), "banner", 6), 6);
  usleep(20000);
  std::string error;
  ASSERT_TRUE(GateVerdict(b.get(), true));
  ASSERT_TRUE(GateVerdict(c.get(), true));
  ASSERT_TRUE(AddPair(map_.pairs_fd(), map_.peer_fd(), b.get(), c.get(), &error)) << error;
  pollfd p{d.get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 200), 0) << "queued bytes moved without the kick";
  ASSERT_TRUE(GateVerdict(b.get(), false));
  ASSERT_TRUE(GateVerdict(c.get(), false));
  ASSERT_EQ(write(a.get(), "+late", 5), 5);
  std::vector<uint8_t> want = {'e', 'a', 'r', 'l', 'y', '+', 'l', 'a', 't', 'e'};
  std::vector<uint8_t> got;
  char buf[64];
  while (got.size() < want.size()) {
    pollfd q{d.get(), POLLIN, 0};
    if (poll(&q, 1, 2000) != 1) break;
    ssize_t n = read(d.get(), buf, sizeof(buf));
    if (n <= 0) break;
    got.insert(got.end(), buf, buf + n);
  }
  EXPECT_EQ(got, want);
  pollfd r{a.get(), POLLIN, 0};
  ASSERT_EQ(poll(&r, 1, 2000), 1);
  EXPECT_EQ(read(a.get(), buf, sizeof(buf)), 6);

  ASSERT_EQ(shutdown(a.get(), SHUT_WR), 0);
  pollfd fin{b.get(), POLLRDHUP, 0};
  ASSERT_EQ(poll(&fin, 1, 2000), 1);
  EXPECT_TRUE(fin.revents & POLLRDHUP);
  pollfd none{d.get(), POLLIN, 0};
  EXPECT_EQ(poll(&none, 1, 200), 0) << "the FIN was forwarded by the kernel";
}

// Reads what arrives on `fd` within 2 s, up to `want` bytes.
std::string ReadSome(int fd, size_t want) {
  std::string got;
  char buf[256];
  while (got.size() < want) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 2000) != 1) break;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

bool Readable(int fd) {
  char c;
  return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

// The pairing race the data plane used to lose (tests/e2e/test_tcp_proxy.py's short
// connections, reset under load): a FIN sets SOCK_DONE, which makes TCP call data_ready
// whatever SO_RCVLOWAT says, so the verdict runs in the middle of the insertion. With the
// peer socket already in zproxy_pair_peer (AddPairKeys' order) the bytes go to the peer;
// with the verdict armed first they were passed to the socket, where the data plane
// found them as "stragglers" and reset the connection.
TEST_F(SpliceMapTest, FinDuringThePairingIsRedirectedNotPassed) {
  auto [a, b] = testing::TcpPair();
  auto [d, c] = testing::TcpPair();
  zproxy_sock_key kb, kc;
  ASSERT_TRUE(SockKeyOf(b.get(), &kb));
  ASSERT_TRUE(SockKeyOf(c.get(), &kc));
  ASSERT_EQ(write(a.get(), "early", 5), 5);
  usleep(20000);
  ASSERT_TRUE(GateVerdict(b.get(), true));
  ASSERT_TRUE(GateVerdict(c.get(), true));
  // AddPairKeys' steps, with the FIN arriving between arming b and arming c.
  uint64_t fb = static_cast<uint64_t>(b.get()), fc = static_cast<uint64_t>(c.get());
  ASSERT_EQ(bpf_map_update_elem(map_.peer_fd(), &kb, &fc, BPF_NOEXIST), 0);
  ASSERT_EQ(bpf_map_update_elem(map_.peer_fd(), &kc, &fb, BPF_NOEXIST), 0);
  ASSERT_EQ(bpf_map_update_elem(map_.pairs_fd(), &kb, &fb, BPF_NOEXIST), 0);
  ASSERT_EQ(shutdown(a.get(), SHUT_WR), 0);
  EXPECT_EQ(ReadSome(d.get(), 5), "early") << "the FIN-triggered verdict did not redirect";
  EXPECT_FALSE(Readable(b.get())) << "bytes were passed to userspace";
  ASSERT_EQ(bpf_map_update_elem(map_.pairs_fd(), &kc, &fc, BPF_NOEXIST), 0);
  ASSERT_TRUE(GateVerdict(b.get(), false));
  ASSERT_TRUE(GateVerdict(c.get(), false));
  ASSERT_EQ(write(d.get(), "back", 4), 4);
  EXPECT_EQ(ReadSome(a.get(), 4), "back");
  zproxy_splice_counters counters;
  ASSERT_TRUE(ReadSpliceCounters(map_.counters_fd(), &counters));
  EXPECT_EQ(counters.no_peer, 0u);
}

// The same FIN with the verdict armed before the peer is reachable (the old order): the
// helper finds no peer and the bytes are dropped, never passed to userspace. This is why
// AddPairKeys fills zproxy_pair_peer first; the test pins the kernel behaviour down.
TEST_F(SpliceMapTest, VerdictWithoutPeerDropsInsteadOfPassing) {
  auto [a, b] = testing::TcpPair();
  zproxy_sock_key kb;
  ASSERT_TRUE(SockKeyOf(b.get(), &kb));
  ASSERT_EQ(write(a.get(), "lost", 4), 4);
  usleep(20000);
  ASSERT_TRUE(GateVerdict(b.get(), true));
  uint64_t fb = static_cast<uint64_t>(b.get());
  ASSERT_EQ(bpf_map_update_elem(map_.pairs_fd(), &kb, &fb, BPF_NOEXIST), 0);
  ASSERT_EQ(shutdown(a.get(), SHUT_WR), 0);
  pollfd fin{b.get(), POLLRDHUP, 0};
  ASSERT_EQ(poll(&fin, 1, 2000), 1);
  usleep(20000);
  EXPECT_FALSE(Readable(b.get()));
  zproxy_splice_counters counters;
  ASSERT_TRUE(ReadSpliceCounters(map_.counters_fd(), &counters));
  EXPECT_EQ(counters.no_peer, 1u);
  EXPECT_EQ(counters.spliced_bytes, 0u);
}

// A side whose FIN arrived before the pairing is not ESTABLISHED any more: the kernel
// refuses it before any verdict is armed, and nothing is left in the maps.
TEST_F(SpliceMapTest, SocketAfterFinIsRefusedCleanly) {
  auto [a, b] = testing::TcpPair();
  auto [d, c] = testing::TcpPair();
  ASSERT_EQ(write(a.get(), "req", 3), 3);
  ASSERT_EQ(shutdown(a.get(), SHUT_WR), 0);
  pollfd fin{b.get(), POLLRDHUP, 0};
  ASSERT_EQ(poll(&fin, 1, 2000), 1);
  zproxy_sock_key kb, kc, next;
  ASSERT_TRUE(SockKeyOf(b.get(), &kb));
  ASSERT_TRUE(SockKeyOf(c.get(), &kc));
  for (bool client_first : {true, false}) {
    std::string error;
    PairResult r =
        client_first
            ? AddPairKeys(map_.pairs_fd(), map_.peer_fd(), b.get(), kb, c.get(), kc, &error)
            : AddPairKeys(map_.pairs_fd(), map_.peer_fd(), c.get(), kc, b.get(), kb, &error);
    EXPECT_EQ(r, PairResult::kRefused) << error;
    EXPECT_NE(bpf_map_get_next_key(map_.peer_fd(), nullptr, &next), 0);
    EXPECT_NE(bpf_map_get_next_key(map_.pairs_fd(), nullptr, &next), 0);
  }
  EXPECT_EQ(ReadSome(b.get(), 3), "req");  // still in b's receive queue, for another mode
}

// The second arming refused after the first succeeded (here: b's key is taken, EEXIST; in
// the data plane: b's FIN or RST within microseconds): a is disarmed before the peers are
// unlinked, the maps are as before, and a's bytes (gated) are still in a's receive queue.
TEST_F(SpliceMapTest, PairingRefusedAfterArmingRollsBack) {
  auto [a, b] = testing::TcpPair();
  auto [d, c] = testing::TcpPair();
  auto [x, e] = testing::TcpPair();
  zproxy_sock_key kb, kc, next;
  ASSERT_TRUE(SockKeyOf(b.get(), &kb));
  ASSERT_TRUE(SockKeyOf(c.get(), &kc));
  uint64_t fe = static_cast<uint64_t>(e.get());
  ASSERT_EQ(bpf_map_update_elem(map_.pairs_fd(), &kc, &fe, BPF_NOEXIST), 0);  // c's key taken
  ASSERT_EQ(write(a.get(), "kept", 4), 4);
  usleep(20000);
  ASSERT_TRUE(GateVerdict(b.get(), true));
  ASSERT_TRUE(GateVerdict(c.get(), true));
  std::string error;
  EXPECT_EQ(AddPairKeys(map_.pairs_fd(), map_.peer_fd(), b.get(), kb, c.get(), kc, &error),
            PairResult::kRefusedAfterArming);
  EXPECT_NE(error.find("zproxy_splice_pairs insert"), std::string::npos) << error;
  EXPECT_NE(bpf_map_get_next_key(map_.peer_fd(), nullptr, &next), 0);
  ASSERT_EQ(bpf_map_get_next_key(map_.pairs_fd(), nullptr, &next), 0);
  EXPECT_EQ(next.cookie, kc.cookie);  // only what was there before
  EXPECT_NE(bpf_map_get_next_key(map_.pairs_fd(), &next, &next), 0);
  ASSERT_TRUE(GateVerdict(b.get(), false));
  ASSERT_TRUE(GateVerdict(c.get(), false));
  EXPECT_EQ(ReadSome(b.get(), 4), "kept");  // nothing moved: another mode can take over
  pollfd p{d.get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 100), 0);
}

TEST_F(SpliceMapTest, RejectsNonTcpSockets) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::string error;
  EXPECT_FALSE(AddPair(map_.pairs_fd(), map_.peer_fd(), fds[0], fds[1], &error));
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace zproxy::controlplane::bpf
