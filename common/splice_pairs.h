// The user side of kernel splicing (bpf/sockmap.bpf.c), usable with nothing but the map
// fds: zproxyd's loader (controlplane/bpf/splice_map) and the unprivileged data plane,
// which gets the fds from zproxyd at bootstrap and only updates/reads the maps.
#pragma once

#include <cstdint>
#include <string>

#include "bpf/zproxy_structs.h"

namespace zproxy {

// The socket's key as the verdict program sees it: its cookie (TCP over IPv4 or IPv6;
// false for anything else).
bool SockKeyOf(int fd, zproxy_sock_key* key);

enum class PairResult {
  kPaired,
  // Nothing was armed: no byte moved, the maps are as before (fall back to another mode).
  kRefused,
  // b was refused after a's verdict was armed (b changed state within microseconds). The
  // maps are as before, but a's verdict may have redirected bytes to b, whose sending the
  // unlinking may have cut short: unless a provably consumed nothing (see
  // dataplane/tunnel/sockmap.cc), the connection must be reset.
  kRefusedAfterArming,
};

// Splices two established TCP sockets: bytes arriving on `a` leave through `b` and vice
// versa. Order: both sockets go into zproxy_pair_peer (the redirect targets, no program)
// first, then into zproxy_splice_pairs (which arms the verdict program): the program never
// runs on a socket whose peer is not reachable yet, whatever triggers it (a FIN, which
// bypasses the SO_RCVLOWAT gate, used to; bytes it saw then were passed to userspace).
// The verdict does not run over bytes already queued until something triggers it: see
// GateVerdict.
PairResult AddPairKeys(int pairs_fd, int peer_fd, int a, const zproxy_sock_key& ka, int b,
                       const zproxy_sock_key& kb, std::string* error);
// Same with the keys looked up (SockKeyOf); true when paired.
bool AddPair(int pairs_fd, int peer_fd, int a, int b, std::string* error);

// Undoes AddPair (zproxy_splice_pairs first: the verdicts stop before their peers go).
// The kernel drops a closed socket from both SOCKHASHes by itself; removing the entries
// before the close keeps the verdict from running during the teardown.
void RemovePair(int pairs_fd, int peer_fd, const zproxy_sock_key& a, const zproxy_sock_key& b);

// The verdict program runs from the socket's data_ready callback, which TCP calls only
// once SO_RCVLOWAT bytes are queued (or a FIN arrived, or under memory pressure).
// GateVerdict(fd, true) raises the low-water mark as far as the kernel allows, so bytes
// that arrive while a pair is being inserted usually stay in the receive queue (what
// keeps a kRefusedAfterArming harmless); GateVerdict(fd, false) sets it back to 1, and
// setting it makes TCP call data_ready at once, so the program then redirects everything
// that queued up (before and during the insertion) in order. Inserting a socket alone
// does not run the program on bytes already queued (tested in splice_map_test).
bool GateVerdict(int fd, bool closed);

// Sum over CPUs of zproxy_counters[0].
bool ReadSpliceCounters(int counters_fd, zproxy_splice_counters* out);

}  // namespace zproxy
