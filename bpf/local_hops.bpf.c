/* sk_msg acceleration of local hops (docs/sidecar.md, "sk_msg"). zproxyd attaches
 * zproxy_lh_ops (sockops) to the application's cgroup and to its own, and zproxy_lh_msg
 * (sk_msg) to zproxy_lh_socks:
 *   sockops  an established TCP socket whose both ends are loopback addresses (127.0.0.0/8,
 *            ::1, v4-mapped 127/8) goes into zproxy_lh_socks under its 4-tuple; a state
 *            callback counts it out when it closes (the kernel removes it from the hash);
 *   sk_msg   what such a socket sends goes straight into its peer's receive queue
 *            (bpf_msg_redirect_hash, BPF_F_INGRESS) when the peer, the reversed 4-tuple, is
 *            in the hash too; otherwise through TCP as usual.
 * A socket's first send fixes its path for good (zproxy_lh_mode): a peer that joins the
 * hash late must not get redirected bytes ahead of TCP bytes it has not read yet. */
#include <linux/bpf.h>

#define ZPROXY_LOCAL_HOPS_MAPS
#include "zproxy_maps.h"

#include <bpf/bpf_endian.h>

#define AF_INET_ 2
#define AF_INET6_ 10

static __always_inline struct zproxy_lh_counters *stats(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&zproxy_lh_stats, &zero);
}

/* IPv4 as ::ffff:a.b.c.d; is it 127.0.0.0/8? */
static __always_inline int map_v4(__u32 ip, __u32 out[4]) {
  out[0] = 0;
  out[1] = 0;
  out[2] = bpf_htonl(0xffff);
  out[3] = ip;
  return (bpf_ntohl(ip) >> 24) == 127;
}

static __always_inline int loopback_v6(const __u32 a[4]) {
  if (a[0] != 0 || a[1] != 0) return 0;
  if (a[2] == 0 && a[3] == bpf_htonl(1)) return 1;                             /* ::1 */
  return a[2] == bpf_htonl(0xffff) && (bpf_ntohl(a[3]) >> 24) == 127; /* v4-mapped */
}

/* The socket's key; 0 unless both ends are loopback. */
static __always_inline int ops_key(struct bpf_sock_ops *skops, struct zproxy_lh_key *k) {
  k->local_port = skops->local_port;
  k->remote_port = bpf_ntohl(skops->remote_port);
  if (skops->family == AF_INET_) {
    int l = map_v4(skops->local_ip4, k->local_ip);
    int r = map_v4(skops->remote_ip4, k->remote_ip);
    return l && r;
  }
  if (skops->family != AF_INET6_) return 0;
  k->local_ip[0] = skops->local_ip6[0];
  k->local_ip[1] = skops->local_ip6[1];
  k->local_ip[2] = skops->local_ip6[2];
  k->local_ip[3] = skops->local_ip6[3];
  k->remote_ip[0] = skops->remote_ip6[0];
  k->remote_ip[1] = skops->remote_ip6[1];
  k->remote_ip[2] = skops->remote_ip6[2];
  k->remote_ip[3] = skops->remote_ip6[3];
  return loopback_v6(k->local_ip) && loopback_v6(k->remote_ip);
}

SEC("sockops")
int zproxy_lh_ops(struct bpf_sock_ops *skops) {
  struct zproxy_lh_counters *c;
  struct zproxy_lh_key key = {};
  switch (skops->op) {
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
    case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
      if (!ops_key(skops, &key)) break;
      c = stats();
      if (bpf_sock_hash_update(skops, &zproxy_lh_socks, &key, BPF_ANY) != 0) {
        if (c) c->insert_failed++;
        break;
      }
      if (c) c->inserts++;
      /* Told when it closes, to count the removal. */
      bpf_sock_ops_cb_flags_set(skops,
                                skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
      break;
    case BPF_SOCK_OPS_STATE_CB:
      if (skops->args[1] == BPF_TCP_CLOSE) {
        c = stats();
        if (c) c->removals++;
      }
      break;
  }
  return 1;
}

SEC("sk_msg")
int zproxy_lh_msg(struct sk_msg_md *msg) {
  struct zproxy_lh_counters *c = stats();
  __u32 len = msg->size;
  struct bpf_sock *sk = msg->sk;
  if (!sk) return SK_PASS;
  __u32 *mode = bpf_sk_storage_get(&zproxy_lh_mode, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
  if (mode && *mode == ZPROXY_LH_PASS) {
    if (c) c->passed_msgs++;
    return SK_PASS;
  }
  /* The peer: this socket's key with the ends swapped. */
  struct zproxy_lh_key peer = {.local_port = bpf_ntohl(msg->remote_port),
                               .remote_port = msg->local_port};
  if (msg->family == AF_INET_) {
    /* Volatile: clang would otherwise share one load of a computed context address
     * between the branches, which the verifier refuses. */
    __u32 rip = *(volatile __u32 *)&msg->remote_ip4;
    __u32 lip = *(volatile __u32 *)&msg->local_ip4;
    map_v4(rip, peer.local_ip);
    map_v4(lip, peer.remote_ip);
  } else {
    peer.local_ip[0] = msg->remote_ip6[0];
    peer.local_ip[1] = msg->remote_ip6[1];
    peer.local_ip[2] = msg->remote_ip6[2];
    peer.local_ip[3] = msg->remote_ip6[3];
    peer.remote_ip[0] = msg->local_ip6[0];
    peer.remote_ip[1] = msg->local_ip6[1];
    peer.remote_ip[2] = msg->local_ip6[2];
    peer.remote_ip[3] = msg->local_ip6[3];
  }
  /* On failure the helper returns SK_DROP and sets no target; SK_PASS then sends through
   * TCP. Only the first send may fall back for good: a redirecting socket whose peer left
   * (it closed) also falls back, and TCP then tells it so. */
  if (bpf_msg_redirect_hash(msg, &zproxy_lh_socks, &peer, BPF_F_INGRESS) == SK_PASS) {
    if (mode && *mode == 0) *mode = ZPROXY_LH_REDIRECT;
    if (c) {
      c->redirected_msgs++;
      c->redirected_bytes += len;
    }
    return SK_PASS;
  }
  if (mode && *mode == 0) {
    *mode = ZPROXY_LH_PASS;
    if (c) c->misses++;
  }
  if (c) c->passed_msgs++;
  return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
