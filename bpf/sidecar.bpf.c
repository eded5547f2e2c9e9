/* Sidecar interception by cgroup (docs/sidecar.md). Attached by zproxyd to the
 * application's cgroup v2 directory only:
 *   connect4/6      a TCP connect to anything but an excluded port/CIDR or zproxy's own
 *                   outbound listener is sent to that listener; the dialled address is
 *                   kept under the socket's cookie (zproxy_orig_dst);
 *   getpeername4/6  the application still sees the address it dialled;
 *   sockops         once the application's side is established (before zproxy's side is
 *                   accepted: on loopback the final ACK is processed after this), the
 *                   dialled address is filed under the application's own address and port
 *                   (zproxy_orig_by_peer), the one name both ends share; both entries go
 *                   when the socket closes.
 * zproxy itself runs outside the cgroup, so its upstream connections never come here. */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/socket.h>

#define ZPROXY_SIDECAR_MAPS
#include "zproxy_maps.h"

#include <bpf/bpf_endian.h>

#define AF_INET_ 2
#define AF_INET6_ 10
#define SOCK_STREAM_ 1

static __always_inline struct zproxy_sidecar_counters *stats(void) {
  __u32 zero = 0;
  return bpf_map_lookup_elem(&zproxy_sidecar_stats, &zero);
}

static __always_inline int port_excluded(__u32 user_port) {
  __u16 port = bpf_ntohs((__u16)user_port);
  return bpf_map_lookup_elem(&zproxy_excl_ports, &port) != 0;
}

static __always_inline void record(struct bpf_sock_addr *ctx, struct zproxy_sidecar_addr *orig) {
  __u64 cookie = bpf_get_socket_cookie(ctx);
  struct zproxy_sidecar_counters *c = stats();
  if (bpf_map_update_elem(&zproxy_orig_dst, &cookie, orig, BPF_ANY) != 0) {
    if (c) c->record_failed++;
  } else if (c) {
    c->redirected++;
  }
}

SEC("cgroup/connect4")
int zproxy_connect4(struct bpf_sock_addr *ctx) {
  if (ctx->type != SOCK_STREAM_) return 1;
  __u32 zero = 0;
  struct zproxy_sidecar_config *cfg = bpf_map_lookup_elem(&zproxy_sidecar_cfg, &zero);
  struct zproxy_sidecar_counters *c = stats();
  if (!cfg || cfg->v4_port == 0) {
    if (c) c->no_target++;
    return 1;
  }
  __u32 ip = ctx->user_ip4;
  __u32 port = ctx->user_port;
  struct zproxy_lpm_v4 k = {.prefixlen = 32, .addr = ip};
  if ((ip == cfg->v4_addr && (__u16)port == cfg->v4_port) || port_excluded(port) ||
      bpf_map_lookup_elem(&zproxy_excl_v4, &k)) {
    if (c) c->excluded++;
    return 1;
  }
  struct zproxy_sidecar_addr orig = {.family = AF_INET_, .port = (__u16)port};
  orig.addr[0] = ip;
  record(ctx, &orig);
  ctx->user_ip4 = cfg->v4_addr;
  ctx->user_port = cfg->v4_port;
  return 1;
}

SEC("cgroup/connect6")
int zproxy_connect6(struct bpf_sock_addr *ctx) {
  if (ctx->type != SOCK_STREAM_) return 1;
  __u32 zero = 0;
  struct zproxy_sidecar_config *cfg = bpf_map_lookup_elem(&zproxy_sidecar_cfg, &zero);
  struct zproxy_sidecar_counters *c = stats();
  /* An IPv6 socket can only be sent to an IPv6 listener (v4-mapped destinations too are
   * left alone: docs/sidecar.md). */
  if (!cfg || cfg->v6_port == 0) {
    if (c) c->no_target++;
    return 1;
  }
  struct zproxy_sidecar_addr orig = {.family = AF_INET6_, .port = (__u16)ctx->user_port};
  orig.addr[0] = ctx->user_ip6[0];
  orig.addr[1] = ctx->user_ip6[1];
  orig.addr[2] = ctx->user_ip6[2];
  orig.addr[3] = ctx->user_ip6[3];
  struct zproxy_lpm_v6 k = {.prefixlen = 128};
  k.addr[0] = orig.addr[0];
  k.addr[1] = orig.addr[1];
  k.addr[2] = orig.addr[2];
  k.addr[3] = orig.addr[3];
  int self = orig.port == cfg->v6_port && orig.addr[0] == cfg->v6_addr[0] &&
             orig.addr[1] == cfg->v6_addr[1] && orig.addr[2] == cfg->v6_addr[2] &&
             orig.addr[3] == cfg->v6_addr[3];
  if (self || port_excluded(ctx->user_port) || bpf_map_lookup_elem(&zproxy_excl_v6, &k)) {
    if (c) c->excluded++;
    return 1;
  }
  record(ctx, &orig);
  ctx->user_ip6[0] = cfg->v6_addr[0];
  ctx->user_ip6[1] = cfg->v6_addr[1];
  ctx->user_ip6[2] = cfg->v6_addr[2];
  ctx->user_ip6[3] = cfg->v6_addr[3];
  ctx->user_port = cfg->v6_port;
  return 1;
}

SEC("cgroup/getpeername4")
int zproxy_getpeer4(struct bpf_sock_addr *ctx) {
  __u64 cookie = bpf_get_socket_cookie(ctx);
  struct zproxy_sidecar_addr *orig = bpf_map_lookup_elem(&zproxy_orig_dst, &cookie);
  if (orig && orig->family == AF_INET_) {
    ctx->user_ip4 = orig->addr[0];
    ctx->user_port = orig->port;
    struct zproxy_sidecar_counters *c = stats();
    if (c) c->peer_restored++;
  }
  return 1;
}

SEC("cgroup/getpeername6")
int zproxy_getpeer6(struct bpf_sock_addr *ctx) {
  __u64 cookie = bpf_get_socket_cookie(ctx);
  struct zproxy_sidecar_addr *orig = bpf_map_lookup_elem(&zproxy_orig_dst, &cookie);
  if (orig && orig->family == AF_INET6_) {
    ctx->user_ip6[0] = orig->addr[0];
    ctx->user_ip6[1] = orig->addr[1];
    ctx->user_ip6[2] = orig->addr[2];
    ctx->user_ip6[3] = orig->addr[3];
    ctx->user_port = orig->port;
    struct zproxy_sidecar_counters *c = stats();
    if (c) c->peer_restored++;
  }
  return 1;
}

/* The application's own address and port, as zproxy's accepted socket sees its peer. */
static __always_inline void local_key(struct bpf_sock_ops *skops, struct zproxy_sidecar_addr *k) {
  k->port = bpf_htons((__u16)skops->local_port);
  if (skops->family == AF_INET_) {
    k->family = AF_INET_;
    k->addr[0] = skops->local_ip4;
  } else {
    k->family = AF_INET6_;
    k->addr[0] = skops->local_ip6[0];
    k->addr[1] = skops->local_ip6[1];
    k->addr[2] = skops->local_ip6[2];
    k->addr[3] = skops->local_ip6[3];
  }
}

SEC("sockops")
int zproxy_sidecar_ops(struct bpf_sock_ops *skops) {
  __u64 cookie = bpf_get_socket_cookie(skops);
  struct zproxy_sidecar_addr *orig;
  struct zproxy_sidecar_addr key = {};
  switch (skops->op) {
    case BPF_SOCK_OPS_TCP_CONNECT_CB:
      /* Intercepted: be told when it closes, even if it never connects. */
      if (bpf_map_lookup_elem(&zproxy_orig_dst, &cookie)) {
        bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
                                             BPF_SOCK_OPS_STATE_CB_FLAG);
      }
      break;
    case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
      orig = bpf_map_lookup_elem(&zproxy_orig_dst, &cookie);
      if (orig) {
        local_key(skops, &key);
        struct zproxy_sidecar_counters *c = stats();
        if (bpf_map_update_elem(&zproxy_orig_by_peer, &key, orig, BPF_ANY) != 0) {
          if (c) c->record_failed++;
        } else if (c) {
          c->established++;
        }
      }
      break;
    case BPF_SOCK_OPS_STATE_CB:
      if (skops->args[1] == BPF_TCP_CLOSE) {
        if (bpf_map_lookup_elem(&zproxy_orig_dst, &cookie)) {
          local_key(skops, &key);
          bpf_map_delete_elem(&zproxy_orig_by_peer, &key);
          bpf_map_delete_elem(&zproxy_orig_dst, &cookie);
        }
      }
      break;
  }
  return 1;
}

char LICENSE[] SEC("license") = "GPL";
