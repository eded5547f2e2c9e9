/* Map key/value layouts shared by the BPF programs and C++ (controlplane/bpf/, the data
 * plane). Fixed-width fields only, no padding holes, so the same bytes mean the same thing
 * on both sides and `bpftool map dump` prints them by name through BTF. */
#ifndef ZPROXY_BPF_STRUCTS_H_
#define ZPROXY_BPF_STRUCTS_H_

#include <linux/types.h>

#include "zproxy_consts.h"

/* zproxy_steer_cfg[0]: how zproxy_steer picks a worker. */
struct zproxy_steer_config {
  __u32 mode;        /* ZPROXY_STEER_CPU or ZPROXY_STEER_HASH */
  __u32 num_workers; /* sockets in zproxy_listen_socks (keys 0..num_workers-1) */
};

/* zproxy_steer_stats (per CPU): what zproxy_steer did. */
struct zproxy_steer_counters {
  __u64 steered;       /* bpf_sk_select_reuseport succeeded */
  __u64 no_worker;     /* no steering entry for this CPU: kernel default selection */
  __u64 select_failed; /* empty sockarray slot (or other error): kernel default */
};

/* A socket of a spliced pair, named by its socket cookie: the kernel's unique 64-bit id of
 * a socket for its lifetime (getsockopt SO_COOKIE in userspace, bpf_get_socket_cookie() in
 * the verdict program). The same for IPv4 and IPv6 sockets, no byte order to agree on. */
struct zproxy_sock_key {
  __u64 cookie;
};

/* zproxy_counters[0] (per CPU): the splice verdict program's work. */
struct zproxy_splice_counters {
  __u64 spliced_bytes;   /* redirected to the peer's egress */
  __u64 spliced_packets; /* skbs redirected */
  __u64 redirect_errors; /* unused since the peer table holds the peer socket itself
                          * (kept: the layout of a pinned map) */
  __u64 no_peer;         /* no peer socket in zproxy_pair_peer (a pair being torn down):
                          * the skb is dropped */
};

/* The health region (common/health_region.h): header, then one byte per endpoint slot. */
struct zproxy_health_header {
  __u32 magic;        /* ZPROXY_HEALTH_MAGIC */
  __u32 version;      /* ZPROXY_HEALTH_VERSION */
  __u32 slot_count;   /* ZPROXY_HEALTH_SLOTS */
  __u32 slots_offset; /* sizeof(struct zproxy_health_header) */
  __u64 generation;
  __u8 reserved[40];
};

struct zproxy_health_region {
  struct zproxy_health_header header;
  __u8 health[ZPROXY_HEALTH_SLOTS]; /* 1 = healthy, 0 = unhealthy */
};

/* zproxy_health_names[slot]: which endpoint health[slot] belongs to, for people and tools
 * (`bpftool map dump pinned <bpffs_path>/zproxy_health_names`). Only assigned slots have an
 * entry. Names are NUL-terminated and cut at ZPROXY_HEALTH_NAME_LEN - 1 bytes. */
struct zproxy_health_slot_name {
  char cluster[ZPROXY_HEALTH_NAME_LEN]; /* Cluster.name */
  char address[ZPROXY_HEALTH_NAME_LEN]; /* Endpoint.address as configured */
};

/* Sidecar interception (bpf/sidecar.bpf.c, docs/sidecar.md): an IPv4 or IPv6 address and
 * port. Value of zproxy_orig_dst (socket cookie -> where the application dialled) and both
 * key (the application's own address and port, i.e. the peer zproxy's listener sees) and
 * value of zproxy_orig_by_peer. */
struct zproxy_sidecar_addr {
  __u16 family; /* AF_INET or AF_INET6 */
  __u16 port;   /* network byte order */
  __u32 addr[4]; /* IPv4 in addr[0] (network byte order), the rest 0; IPv6: all 16 bytes */
};

/* zproxy_sidecar_cfg[0]: where intercepted connections go (the outbound listener). */
struct zproxy_sidecar_config {
  __u32 v4_addr;    /* network byte order; 0 = no IPv4 target (connect4 intercepts nothing) */
  __u16 v4_port;    /* network byte order */
  __u16 v6_port;    /* network byte order; 0 = no IPv6 target */
  __u32 v6_addr[4];
};

/* zproxy_sidecar_stats[0] (per CPU): what the sidecar programs did. */
struct zproxy_sidecar_counters {
  __u64 redirected;     /* connect4/6 rewrote the destination to the outbound listener */
  __u64 excluded;       /* exclude_ports / exclude_cidrs / the listener itself: untouched */
  __u64 no_target;      /* no listener of that family configured: untouched */
  __u64 peer_restored;  /* getpeername showed the dialled address */
  __u64 established;    /* sockops: recorded for zproxy by the application's address */
  __u64 record_failed;  /* a map update failed (full): the connection goes un-recorded */
};

/* zproxy_in_stats[0] (per CPU): what the sk_lookup program did (bpf/sk_lookup.bpf.c). */
struct zproxy_inbound_counters {
  __u64 steered;       /* assigned to zproxy's inbound listener */
  __u64 loopback;      /* an inbound port, but to a loopback address: left to the app */
  __u64 no_socket;     /* no inbound listener socket of that family: left to the app */
  __u64 assign_failed; /* bpf_sk_assign refused: left to the normal lookup */
};

/* zproxy_sidecar_excl_v4 / _v6 keys: LPM tries of exclude_cidrs. */
struct zproxy_lpm_v4 {
  __u32 prefixlen;
  __u32 addr;
};
struct zproxy_lpm_v6 {
  __u32 prefixlen;
  __u32 addr[4];
};

/* sk_msg acceleration of local hops (bpf/local_hops.bpf.c, docs/sidecar.md): a TCP socket
 * by its 4-tuple as seen from that socket. IPv4 is stored v4-mapped (::ffff:a.b.c.d), so an
 * IPv4 client and zproxy's dual-stack [::] listener name the same connection; the peer of
 * a socket is the key with local and remote swapped. */
struct zproxy_lh_key {
  __u32 local_ip[4];  /* network byte order */
  __u32 remote_ip[4]; /* network byte order */
  __u32 local_port;   /* host byte order */
  __u32 remote_port;  /* host byte order */
};

/* zproxy_lh_stats[0] (per CPU): what the local-hop programs did. */
struct zproxy_lh_counters {
  __u64 redirected_msgs;  /* sendmsg calls moved straight into the peer's receive queue */
  __u64 redirected_bytes;
  __u64 misses;           /* a socket's first send found no peer: it uses TCP for good */
  __u64 passed_msgs;      /* sends of such sockets (and failed redirects) through TCP */
  __u64 inserts;          /* sockops put an established loopback socket in the hash */
  __u64 insert_failed;    /* the hash refused one (full, or in a conflicting map) */
  __u64 removals;         /* an inserted socket closed (the kernel drops it from the hash) */
};

#endif /* ZPROXY_BPF_STRUCTS_H_ */
