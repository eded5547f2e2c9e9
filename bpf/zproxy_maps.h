/* BPF map definitions, one block per object so each .bpf.c gets only its own maps (define
 * ZPROXY_REUSEPORT_MAPS / ZPROXY_SOCKMAP_MAPS / ZPROXY_HEALTH_MAPS / ZPROXY_SIDECAR_MAPS /
 * ZPROXY_SK_LOOKUP_MAPS / ZPROXY_LOCAL_HOPS_MAPS before including).
 * C++ includes it for the pin names only: zproxyd pins map X at <bpffs_path>/X. */
#ifndef ZPROXY_BPF_MAPS_H_
#define ZPROXY_BPF_MAPS_H_

#include "zproxy_structs.h"

#ifdef __bpf__
#include <bpf/bpf_helpers.h>

#ifdef ZPROXY_REUSEPORT_MAPS
/* worker index -> that worker's listen socket (one SO_REUSEPORT member). */
struct {
  __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
  __uint(max_entries, ZPROXY_MAX_WORKERS);
  __type(key, __u32);
  __type(value, __u64);
} zproxy_listen_socks SEC(".maps");

/* cpu -> worker index, filled by the loader from the workers' CPUs. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, ZPROXY_MAX_CPUS);
  __type(key, __u32);
  __type(value, __u32);
} zproxy_steering SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct zproxy_steer_config);
} zproxy_steer_cfg SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct zproxy_steer_counters);
} zproxy_steer_stats SEC(".maps");
#endif /* ZPROXY_REUSEPORT_MAPS */

#ifdef ZPROXY_SOCKMAP_MAPS
/* Every socket of a spliced pair under its own key; zproxy_splice (the stream verdict) is
 * attached to this map, so a socket's skbs go through it from its insertion here on. The
 * data plane inserts a pair here LAST, after zproxy_pair_peer: the verdict can then never
 * run on a socket whose peer is not yet reachable. */
struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, ZPROXY_MAX_SPLICE_SOCKS);
  __type(key, struct zproxy_sock_key);
  __type(value, __u64);
} zproxy_splice_pairs SEC(".maps");

/* A socket's key -> its PEER socket (both directions are entries): the redirect target.
 * No program is attached, so being here changes nothing in how a socket receives. A
 * SOCKHASH, not a hash of keys: the kernel drops an entry by itself when its socket
 * closes, so a data plane that dies leaves nothing behind. Userspace lookups (bpftool)
 * return the peer socket's cookie. */
struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, ZPROXY_MAX_SPLICE_SOCKS);
  __type(key, struct zproxy_sock_key);
  __type(value, __u64);
} zproxy_pair_peer SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct zproxy_splice_counters);
} zproxy_counters SEC(".maps");
#endif /* ZPROXY_SOCKMAP_MAPS */

#ifdef ZPROXY_HEALTH_MAPS
/* One entry: the whole health region, mmapable so readers use plain loads. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct zproxy_health_region);
} zproxy_health SEC(".maps");

/* slot -> endpoint name, written by zproxyd whenever it assigns or frees a slot. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZPROXY_HEALTH_SLOTS);
  __type(key, __u32);
  __type(value, struct zproxy_health_slot_name);
} zproxy_health_names SEC(".maps");
#endif /* ZPROXY_HEALTH_MAPS */

#ifdef ZPROXY_SIDECAR_MAPS
/* zproxy_sidecar_cfg[0]: the outbound listener's address per family (the loader fills it). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct zproxy_sidecar_config);
} zproxy_sidecar_cfg SEC(".maps");

/* Socket cookie of an intercepted application socket -> the address it dialled. Written by
 * connect4/6, read by getpeername4/6 and by sockops when the connection is established;
 * sockops deletes it when the socket closes (LRU: a full map forgets, never refuses). */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, ZPROXY_SIDECAR_MAX_CONNS);
  __type(key, __u64);
  __type(value, struct zproxy_sidecar_addr);
} zproxy_orig_dst SEC(".maps");

/* The application socket's own address and port (the peer zproxy's listener sees) -> the
 * address it dialled. The data plane looks it up once per accepted connection. */
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, ZPROXY_SIDECAR_MAX_CONNS);
  __type(key, struct zproxy_sidecar_addr);
  __type(value, struct zproxy_sidecar_addr);
} zproxy_orig_by_peer SEC(".maps");

/* sidecar.exclude_ports (host byte order) -> 1. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZPROXY_SIDECAR_MAX_EXCLUDES);
  __type(key, __u16);
  __type(value, __u8);
} zproxy_excl_ports SEC(".maps");

/* sidecar.exclude_cidrs, one trie per family. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, ZPROXY_SIDECAR_MAX_EXCLUDES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct zproxy_lpm_v4);
  __type(value, __u8);
} zproxy_excl_v4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, ZPROXY_SIDECAR_MAX_EXCLUDES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct zproxy_lpm_v6);
  __type(value, __u8);
} zproxy_excl_v6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct zproxy_sidecar_counters);
} zproxy_sidecar_stats SEC(".maps");
#endif /* ZPROXY_SIDECAR_MAPS */

#ifdef ZPROXY_SK_LOOKUP_MAPS
/* ZPROXY_INBOUND_SOCK_V4 / _V6 -> the inbound listener's first SO_REUSEPORT member of that
 * family (the kernel then picks within its reuseport group). Filled by zproxyd, which owns
 * the listen sockets; closing them drops the entries. */
struct {
  __uint(type, BPF_MAP_TYPE_SOCKMAP);
  __uint(max_entries, 2);
  __type(key, __u32);
  __type(value, __u64);
} zproxy_in_socks SEC(".maps");

/* sidecar.inbound_ports (host byte order) -> 1. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, ZPROXY_INBOUND_MAX_PORTS);
  __type(key, __u16);
  __type(value, __u8);
} zproxy_in_ports SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct zproxy_inbound_counters);
} zproxy_in_stats SEC(".maps");
#endif /* ZPROXY_SK_LOOKUP_MAPS */
#ifdef ZPROXY_LOCAL_HOPS_MAPS
/* Established loopback sockets of the application's cgroup and of zproxy's, under their
 * own 4-tuple; zproxy_lh_msg (sk_msg) is attached to this map. The kernel drops a socket
 * from it when the socket closes. */
struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, ZPROXY_LH_MAX_SOCKS);
  __type(key, struct zproxy_lh_key);
  __type(value, __u64);
} zproxy_lh_socks SEC(".maps");

/* Per socket: ZPROXY_LH_REDIRECT or ZPROXY_LH_PASS, fixed by its first send (a socket
 * never mixes the two paths: bytes passed through TCP and bytes redirected later could be
 * read out of order). Freed with the socket. */
struct {
  __uint(type, BPF_MAP_TYPE_SK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, __u32);
} zproxy_lh_mode SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct zproxy_lh_counters);
} zproxy_lh_stats SEC(".maps");
#endif /* ZPROXY_LOCAL_HOPS_MAPS */
#endif /* __bpf__ */

#endif /* ZPROXY_BPF_MAPS_H_ */
