/* Inbound interception (docs/sidecar.md, issue 15 §2). Attached by zproxyd to its network
 * namespace: a TCP connection arriving for one of sidecar.inbound_ports on any local,
 * non-loopback address is handed to zproxy's inbound listener (bpf_sk_assign) instead of
 * the application listening on that port.
 *
 * Why loopback destinations are left alone: zproxy forwards what it took to the
 * application over loopback (a cluster at 127.0.0.1:<port>, ::1 too); steering those
 * would loop them back into zproxy. Local clients that dial 127.0.0.1:<port> therefore
 * reach the application directly, as they would with a PREROUTING REDIRECT. */
#include <linux/bpf.h>
#include <linux/in.h>

#define ZPROXY_SK_LOOKUP_MAPS
#include "zproxy_maps.h"

#include <bpf/bpf_endian.h>

#define AF_INET_ 2

static __always_inline struct zproxy_inbound_counters *stats(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&zproxy_in_stats, &zero);
}

static __always_inline int loopback(struct bpf_sk_lookup *ctx) {
  if (ctx->family == AF_INET_) return (bpf_ntohl(ctx->local_ip4) >> 24) == 127;
  return ctx->local_ip6[0] == 0 && ctx->local_ip6[1] == 0 && ctx->local_ip6[2] == 0 &&
         ctx->local_ip6[3] == bpf_htonl(1);
}

SEC("sk_lookup")
int zproxy_inbound(struct bpf_sk_lookup *ctx) {
  if (ctx->protocol != IPPROTO_TCP) return SK_PASS;
  __u16 port = (__u16)ctx->local_port; /* host byte order */
  if (!bpf_map_lookup_elem(&zproxy_in_ports, &port)) return SK_PASS;
  struct zproxy_inbound_counters *c = stats();
  if (loopback(ctx)) {
    if (c) c->loopback++;
    return SK_PASS;
  }
  __u32 key = ctx->family == AF_INET_ ? ZPROXY_INBOUND_SOCK_V4 : ZPROXY_INBOUND_SOCK_V6;
  struct bpf_sock *sk = bpf_map_lookup_elem(&zproxy_in_socks, &key);
  if (!sk) {
    if (c) c->no_socket++;
    return SK_PASS;
  }
  long err = bpf_sk_assign(ctx, sk, 0);
  bpf_sk_release(sk);
  if (c) {
    if (err == 0) {
      c->steered++;
    } else {
      c->assign_failed++;
    }
  }
  /* SK_PASS either way: on failure the normal lookup (the application) takes it. */
  return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
