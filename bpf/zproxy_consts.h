/* Constants shared by the BPF programs (bpf/NAME.bpf.c) and zproxyd's loader
 * (controlplane/bpf/). Plain C, no includes: both sides include it as is. */
#ifndef ZPROXY_BPF_CONSTS_H_
#define ZPROXY_BPF_CONSTS_H_

/* Workers per listener (REUSEPORT_SOCKARRAY entries) and CPUs in the steering table. */
#define ZPROXY_MAX_WORKERS 256
#define ZPROXY_MAX_CPUS 1024

/* Steering policy, zproxy_steer_cfg.mode. */
#define ZPROXY_STEER_CPU 0  /* the worker on the CPU that received the SYN */
#define ZPROXY_STEER_HASH 1 /* reuse_md->hash (the 4-tuple hash) modulo num_workers */

/* Spliced socket pairs: two SOCKHASH entries per pass-through connection. */
#define ZPROXY_MAX_SPLICE_SOCKS 65536

/* Health region: same numbers as common/health_region.h (static_asserts there keep them
 * equal). One array entry holds the header and every slot byte. */
#define ZPROXY_HEALTH_MAGIC 0x5248505a /* "ZPHR" little endian */
#define ZPROXY_HEALTH_VERSION 1
#define ZPROXY_HEALTH_SLOTS 4096
/* zproxy_health_names: bytes per name field, NUL included (longer names are cut). */
#define ZPROXY_HEALTH_NAME_LEN 64

/* Sidecar interception: connections in flight per map (LRU: a full map forgets the
 * oldest, never refuses), exclusions. */
#define ZPROXY_SIDECAR_MAX_CONNS 65536
#define ZPROXY_SIDECAR_MAX_EXCLUDES 256
/* Inbound interception: sidecar.inbound_ports entries; zproxy_in_socks keys. */
#define ZPROXY_INBOUND_MAX_PORTS 256
#define ZPROXY_INBOUND_SOCK_V4 0
#define ZPROXY_INBOUND_SOCK_V6 1

/* Local hops (sk_msg): sockets in zproxy_lh_socks (both ends of each connection). */
#define ZPROXY_LH_MAX_SOCKS 65536
/* zproxy_lh_mode values: a socket's first send decides how all its sends go. */
#define ZPROXY_LH_REDIRECT 1
#define ZPROXY_LH_PASS 2

#endif /* ZPROXY_BPF_CONSTS_H_ */
