// sk_msg local hops on the data plane's side (bpf/local_hops.bpf.c, docs/sidecar.md
// "sk_msg"): whether a socket may be handed bytes by its peer's sk_msg program. Such bytes
// land in the socket's psock queue, which only a receive reads: the sk_skb verdict
// (sockmap pass-through) and io_uring splice never see them, so a tunnel with such a
// socket must copy.
#pragma once

#include "bpf/zproxy_structs.h"

namespace zproxy::dataplane {

// The key zproxy_lh_socks files `fd` under (its own 4-tuple, IPv4 v4-mapped); false unless
// `fd` is a connected TCP socket whose both ends are loopback addresses.
bool LocalHopKeyOf(int fd, zproxy_lh_key* key);

// True when `fd` and its peer are both in zproxy_lh_socks (`map_fd`), i.e. the peer's
// sends may be redirected into `fd`. -1 map_fd: never.
bool IsLocalHop(int map_fd, int fd);

}  // namespace zproxy::dataplane
