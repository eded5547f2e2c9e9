// Kernel splicing of pass-through pairs (bpf/sockmap.bpf.c): the SOCKHASH
// zproxy_splice_pairs with the stream verdict program zproxy_splice attached, the peer
// table zproxy_pair_peer and the per-CPU counters. zproxyd loads and pins it; the data
// plane gets the map fds and calls AddPair/RemovePair (free functions on fds, so an
// unprivileged holder of the fds can use them).
#pragma once

#include <cstdint>
#include <string>

#include "bpf/sockmap.skel.h"
#include "bpf/zproxy_structs.h"
#include "controlplane/bpf/options.h"
#include "controlplane/bpf/skeleton.h"

namespace zproxy::controlplane::bpf {

class SpliceMap {
 public:
  // Loads (adopting compatible pins), attaches the verdict program to the SOCKHASH, pins.
  bool Load(const BpfOptions& options, std::string* error);

  int pairs_fd() const { return bpf_map__fd(skel_->maps.zproxy_splice_pairs); }
  int peer_fd() const { return bpf_map__fd(skel_->maps.zproxy_pair_peer); }
  int counters_fd() const { return bpf_map__fd(skel_->maps.zproxy_counters); }
  int prog_fd() const { return bpf_program__fd(skel_->progs.zproxy_splice); }
  const Skeleton<::sockmap>& skeleton() const { return skel_; }

 private:
  Skeleton<::sockmap> skel_;
};

// The socket's key as the verdict program sees it (IPv4 TCP only; false otherwise).
bool SockKeyOf(int fd, zproxy_sock_key* key);

// Splices two established TCP sockets: bytes arriving on `a` leave through `b` and vice
// versa. Both sockets go into the SOCKHASH first and the peer entries last, so the program
// never redirects to a socket that is not in the map yet (bytes arriving in between stay
// readable on their socket: the caller drains them by hand). On failure nothing is left in
// the maps.
bool AddPair(int pairs_fd, int peer_fd, int a, int b, std::string* error);

// Undoes AddPair (peer entries first). The kernel also drops a closed socket from the
// SOCKHASH by itself, but not the peer entries: call this on every close.
void RemovePair(int pairs_fd, int peer_fd, const zproxy_sock_key& a, const zproxy_sock_key& b);

// Sum over CPUs of zproxy_counters[0].
bool ReadSpliceCounters(int counters_fd, zproxy_splice_counters* out);

}  // namespace zproxy::controlplane::bpf
