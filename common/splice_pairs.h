// The user side of kernel splicing (bpf/sockmap.bpf.c), usable with nothing but the map
// fds: zproxyd's loader (controlplane/bpf/splice_map) and the unprivileged data plane,
// which gets the fds from zproxyd at bootstrap and only updates/reads the maps.
#pragma once

#include <cstdint>
#include <string>

#include "bpf/zproxy_structs.h"

namespace zproxy {

// The socket's key as the verdict program sees it (IPv4 TCP only; false otherwise).
bool SockKeyOf(int fd, zproxy_sock_key* key);

// Splices two established TCP sockets: bytes arriving on `a` leave through `b` and vice
// versa. Both sockets go into the SOCKHASH first and the peer entries last, so the program
// never redirects to a socket that is not in the map yet (bytes the program sees in
// between are passed to the socket: see GateVerdict for how the data plane avoids that).
// On failure nothing is left in the maps.
bool AddPair(int pairs_fd, int peer_fd, int a, int b, std::string* error);
// Same with the keys already known (SockKeyOf).
bool AddPairKeys(int pairs_fd, int peer_fd, int a, const zproxy_sock_key& ka, int b,
                 const zproxy_sock_key& kb, std::string* error);

// Undoes AddPair (peer entries first). The kernel also drops a closed socket from the
// SOCKHASH by itself, but not the peer entries: call this on every close.
void RemovePair(int pairs_fd, int peer_fd, const zproxy_sock_key& a, const zproxy_sock_key& b);

// The verdict program runs from the socket's data_ready callback, which TCP calls only
// once SO_RCVLOWAT bytes are queued. GateVerdict(fd, true) raises the low-water mark as
// far as the kernel allows, so bytes that arrive while a pair is being inserted stay in
// the receive queue; GateVerdict(fd, false) sets it back to 1, and setting it makes TCP
// call data_ready at once, so the program then redirects everything that queued up
// (before and during the insertion) in order. Inserting a socket alone does not run the
// program on bytes already queued (tested in splice_map_test).
bool GateVerdict(int fd, bool closed);

// Sum over CPUs of zproxy_counters[0].
bool ReadSpliceCounters(int counters_fd, zproxy_splice_counters* out);

}  // namespace zproxy
