/* Kernel splicing of pass-through pairs: both sockets of a pair sit in zproxy_splice_pairs
 * with this stream verdict program attached to the map, so every skb arriving on one socket
 * is queued straight onto its peer's egress (zproxy_pair_peer holds the peer socket);
 * userspace never sees the bytes. */
#include <linux/bpf.h>

#define ZPROXY_SOCKMAP_MAPS
#include "zproxy_maps.h"

SEC("sk_skb/stream_verdict")
int zproxy_splice(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct zproxy_splice_counters *c = bpf_map_lookup_elem(&zproxy_counters, &zero);
  /* The receiving socket's cookie: what userspace keyed it by (SO_COOKIE). */
  struct zproxy_sock_key key = {.cookie = bpf_get_socket_cookie(skb)};
  if (skb->len == 0) {
    /* A bare FIN. TCP has already recorded it on this socket (userspace sees POLLRDHUP
     * and forwards it); the skb carries nothing. Redirected, the peer's backlog worker
     * would "send" 0 bytes and take that for a broken pipe (EPIPE on the peer, seen on
     * 6.18). Passed, it can land behind queued redirects in this socket's own backlog and
     * fail the same way on this socket. Dropping it is the only safe verdict. */
    return SK_DROP;
  }
  /* The peer socket is zproxy_pair_peer[key]: one lookup, done by the helper. Userspace
   * fills zproxy_pair_peer before it puts a socket into zproxy_splice_pairs (the map this
   * program is attached to) and empties zproxy_splice_pairs first, so a missing peer here
   * means the pair is being torn down. SK_PASS would hand the bytes to userspace, which
   * never reads a paired socket (they would be stragglers): the helper drops them. */
  __u32 len = skb->len;
  long verdict = bpf_sk_redirect_hash(skb, &zproxy_pair_peer, &key, 0);
  if (c) {
    if (verdict == SK_PASS) {
      c->spliced_bytes += len;
      c->spliced_packets++;
    } else {
      c->no_peer++;
    }
  }
  return verdict;
}

char LICENSE[] SEC("license") = "GPL";
