#include "common/splice_pairs.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <climits>
#include <cstring>
#include <vector>

namespace zproxy {

bool SockKeyOf(int fd, zproxy_sock_key* key) {
  // SO_PROTOCOL first: a Unix stream socket has a cookie too (and fits a SOCKHASH on
  // recent kernels), but the verdict program and the data plane's FIN handling are TCP's.
  int protocol = 0;
  socklen_t len = sizeof(protocol);
  if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0 || protocol != IPPROTO_TCP) {
    return false;
  }
  uint64_t cookie = 0;
  len = sizeof(cookie);
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) return false;
  key->cookie = cookie;
  return true;
}

namespace {

bool Insert(int map_fd, const zproxy_sock_key& key, int sock, const char* map_name,
            std::string* error) {
  uint64_t value = static_cast<uint64_t>(sock);
  if (bpf_map_update_elem(map_fd, &key, &value, BPF_NOEXIST) == 0) return true;
  *error = std::string(map_name) + " insert: " + std::strerror(errno);
  return false;
}

}  // namespace

PairResult AddPairKeys(int pairs_fd, int peer_fd, int a, const zproxy_sock_key& ka, int b,
                       const zproxy_sock_key& kb, std::string* error) {
  // 1. The redirect targets, with no program attached: nothing about how a or b receive
  //    changes yet. The kernel refuses a socket that is no longer ESTABLISHED (a FIN or
  //    an RST arrived: EOPNOTSUPP), so this is where most refusals happen.
  if (!Insert(peer_fd, ka, b, "zproxy_pair_peer", error)) return PairResult::kRefused;
  if (!Insert(peer_fd, kb, a, "zproxy_pair_peer", error)) {
    bpf_map_delete_elem(peer_fd, &ka);
    return PairResult::kRefused;
  }
  // 2. Arm the verdict, a then b. From here on whatever triggers a's verdict (data past
  //    the low-water mark, a FIN, memory pressure) finds b in zproxy_pair_peer.
  if (!Insert(pairs_fd, ka, a, "zproxy_splice_pairs", error)) {
    bpf_map_delete_elem(peer_fd, &ka);
    bpf_map_delete_elem(peer_fd, &kb);
    return PairResult::kRefused;
  }
  if (!Insert(pairs_fd, kb, b, "zproxy_splice_pairs", error)) {
    // b changed state since step 1 (a FIN or an RST within microseconds). Disarm a
    // before unlinking the peers, so its verdict never runs without a peer.
    bpf_map_delete_elem(pairs_fd, &ka);
    bpf_map_delete_elem(peer_fd, &ka);
    bpf_map_delete_elem(peer_fd, &kb);
    return PairResult::kRefusedAfterArming;
  }
  return PairResult::kPaired;
}

bool AddPair(int pairs_fd, int peer_fd, int a, int b, std::string* error) {
  zproxy_sock_key ka, kb;
  if (!SockKeyOf(a, &ka) || !SockKeyOf(b, &kb)) {
    *error = "splice needs two TCP sockets";
    return false;
  }
  return AddPairKeys(pairs_fd, peer_fd, a, ka, b, kb, error) == PairResult::kPaired;
}

void RemovePair(int pairs_fd, int peer_fd, const zproxy_sock_key& a, const zproxy_sock_key& b) {
  // The reverse of AddPairKeys: disarm the verdicts first, then drop the redirect targets.
  bpf_map_delete_elem(pairs_fd, &a);
  bpf_map_delete_elem(pairs_fd, &b);
  bpf_map_delete_elem(peer_fd, &a);
  bpf_map_delete_elem(peer_fd, &b);
}

bool GateVerdict(int fd, bool closed) {
  // The kernel caps the value (at half of tcp_rmem[2] or of a locked SO_RCVBUF).
  int lowat = closed ? INT_MAX : 1;
  return setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)) == 0;
}

bool ReadSpliceCounters(int counters_fd, zproxy_splice_counters* out) {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return false;
  std::vector<zproxy_splice_counters> per_cpu(static_cast<size_t>(cpus));
  uint32_t zero = 0;
  if (bpf_map_lookup_elem(counters_fd, &zero, per_cpu.data()) != 0) return false;
  *out = {};
  for (const auto& c : per_cpu) {
    out->spliced_bytes += c.spliced_bytes;
    out->spliced_packets += c.spliced_packets;
    out->redirect_errors += c.redirect_errors;
    out->no_peer += c.no_peer;
  }
  return true;
}

}  // namespace zproxy
