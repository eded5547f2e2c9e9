#include "controlplane/bpf/splice_map.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

#include "controlplane/bpf/bpffs.h"

namespace zproxy::controlplane::bpf {

bool SpliceMap::Load(const BpfOptions& options, std::string* error) {
  if (!options.pin_dir.empty() && !EnsureBpffsDir(options.pin_dir, error)) return false;
  if (!skel_.OpenAndLoad(options.pin_dir, options.keep_pins, "sockmap", error)) return false;
  // The verdict program attaches to the map (not to sockets), before any socket is added.
  // A reused pinned SOCKHASH may still carry the attachment of the previous run's
  // program: detach it (by fd, ignoring "not attached"), then attach ours.
  bpf_prog_detach2(prog_fd(), pairs_fd(), BPF_SK_SKB_STREAM_VERDICT);
  if (bpf_prog_attach(prog_fd(), pairs_fd(), BPF_SK_SKB_STREAM_VERDICT, 0) != 0) {
    *error = std::string("attach zproxy_splice to zproxy_splice_pairs: ") + std::strerror(errno);
    skel_.Reset();
    return false;
  }
  return skel_.CommitPins(error);
}

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

bool AddPair(int pairs_fd, int peer_fd, int a, int b, std::string* error) {
  zproxy_sock_key ka, kb;
  if (!SockKeyOf(a, &ka) || !SockKeyOf(b, &kb)) {
    *error = "splice needs two connected IPv4 TCP sockets";
    return false;
  }
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

void RemovePair(int pairs_fd, int peer_fd, const zproxy_sock_key& a, const zproxy_sock_key& b) {
  bpf_map_delete_elem(peer_fd, &a);
  bpf_map_delete_elem(peer_fd, &b);
  bpf_map_delete_elem(pairs_fd, &a);
  bpf_map_delete_elem(pairs_fd, &b);
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

}  // namespace zproxy::controlplane::bpf
