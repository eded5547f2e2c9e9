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
#include "common/splice_pairs.h"
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

// The pair operations live in common/splice_pairs.h (the data plane uses them too).
using zproxy::AddPair;
using zproxy::ReadSpliceCounters;
using zproxy::RemovePair;
using zproxy::SockKeyOf;

}  // namespace zproxy::controlplane::bpf
