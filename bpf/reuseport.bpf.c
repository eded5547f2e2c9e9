/* sk_reuseport steering: each new connection goes to the listen socket of the worker that
 * runs on the CPU which received the SYN (so accept, recv and the softirq share a cache),
 * or, with ZPROXY_STEER_HASH, to reuse_md->hash % num_workers. Whenever no choice can be
 * made the program returns SK_PASS without selecting: the kernel's own hash picks. */
#include <linux/bpf.h>

#define ZPROXY_REUSEPORT_MAPS
#include "zproxy_maps.h"

static __always_inline void count(__u32 field) {
  __u32 zero = 0;
  struct zproxy_steer_counters *c = bpf_map_lookup_elem(&zproxy_steer_stats, &zero);
  if (!c) return;
  if (field == 0) c->steered++;
  else if (field == 1) c->no_worker++;
  else c->select_failed++;
}

SEC("sk_reuseport")
int zproxy_steer(struct sk_reuseport_md *md) {
  __u32 zero = 0;
  __u32 worker;
  struct zproxy_steer_config *cfg = bpf_map_lookup_elem(&zproxy_steer_cfg, &zero);

  if (cfg && cfg->mode == ZPROXY_STEER_HASH) {
    __u32 n = cfg->num_workers;
    if (n == 0) {
      count(1);
      return SK_PASS;
    }
    worker = md->hash % n;
  } else {
    __u32 cpu = bpf_get_smp_processor_id();
    __u32 *w = bpf_map_lookup_elem(&zproxy_steering, &cpu);
    /* Unfilled entries read 0 in an array: the loader fills every CPU it knows, and a
     * worker index beyond num_workers is treated as "no worker". */
    if (!w || (cfg && *w >= cfg->num_workers)) {
      count(1);
      return SK_PASS;
    }
    worker = *w;
  }
  if (bpf_sk_select_reuseport(md, &zproxy_listen_socks, &worker, 0) != 0) {
    count(2); /* empty slot (worker socket closed) or another group's socket */
    return SK_PASS;
  }
  count(0);
  return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
