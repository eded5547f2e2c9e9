#include "common/splice_pairs.h"

#include <arpa/inet.h>
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
  sockaddr_in local{}, remote{};
  socklen_t len = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0 ||
      local.sin_family != AF_INET) {
    return false;
  }
  len = sizeof(remote);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &len) != 0 ||
      remote.sin_family != AF_INET) {
    return false;
  }
  // Layout contract: bpf/zproxy_structs.h (addresses as on the wire, ports host order).
  key->local_ip4 = local.sin_addr.s_addr;
  key->remote_ip4 = remote.sin_addr.s_addr;
  key->local_port = ntohs(local.sin_port);
  key->remote_port = ntohs(remote.sin_port);
  return true;
}

bool AddPairKeys(int pairs_fd, int peer_fd, int a, const zproxy_sock_key& ka, int b,
                 const zproxy_sock_key& kb, std::string* error) {
  uint64_t fa = static_cast<uint64_t>(a), fb = static_cast<uint64_t>(b);
  if (bpf_map_update_elem(pairs_fd, &ka, &fa, BPF_NOEXIST) != 0) {
    *error = std::string("zproxy_splice_pairs insert: ") + std::strerror(errno);
    return false;
  }
  if (bpf_map_update_elem(pairs_fd, &kb, &fb, BPF_NOEXIST) != 0) {
    *error = std::string("zproxy_splice_pairs insert: ") + std::strerror(errno);
    bpf_map_delete_elem(pairs_fd, &ka);
    return false;
  }
  if (bpf_map_update_elem(peer_fd, &ka, &kb, BPF_ANY) != 0 ||
      bpf_map_update_elem(peer_fd, &kb, &ka, BPF_ANY) != 0) {
    *error = std::string("zproxy_pair_peer insert: ") + std::strerror(errno);
    RemovePair(pairs_fd, peer_fd, ka, kb);
    return false;
  }
  return true;
}

bool AddPair(int pairs_fd, int peer_fd, int a, int b, std::string* error) {
  zproxy_sock_key ka, kb;
  if (!SockKeyOf(a, &ka) || !SockKeyOf(b, &kb)) {
    *error = "splice needs two connected IPv4 TCP sockets";
    return false;
  }
  return AddPairKeys(pairs_fd, peer_fd, a, ka, b, kb, error);
}

void RemovePair(int pairs_fd, int peer_fd, const zproxy_sock_key& a, const zproxy_sock_key& b) {
  bpf_map_delete_elem(peer_fd, &a);
  bpf_map_delete_elem(peer_fd, &b);
  bpf_map_delete_elem(pairs_fd, &a);
  bpf_map_delete_elem(pairs_fd, &b);
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
