// Where a redirected client was going (docs/sidecar.md): the destination it dialled before
// the sidecar's connect4/6 programs or an iptables/nftables REDIRECT sent it to zproxy's
// listener. Plain functions on a socket fd and a map fd; the worker calls Recover once per
// accepted connection of a listener with original_destination: true.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace zproxy::dataplane::sidecar {

// How the original destination was learned, or why there is none (the label of
// zproxy_original_destination_total).
enum class DstSource : uint8_t {
  kBpfMap,         // zproxy_orig_by_peer (the sidecar's cgroup programs)
  kSoOriginalDst,  // getsockopt(SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST): a REDIRECT rule
  kNotRedirected,  // the connection was made to the listener itself: forwarding would loop
  kUnknown,        // neither source knows it (no conntrack entry, no map entry)
  kCount,
};
const char* DstSourceName(DstSource s);

union SockAddr {
  sockaddr sa;
  sockaddr_in v4;
  sockaddr_in6 v6;
};

inline socklen_t SockAddrLen(const SockAddr& a) {
  return a.sa.sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

bool SameAddress(const SockAddr& a, const SockAddr& b);

// The accepted socket `fd`, its peer (the client: the by-peer map's key) and the sidecar's
// map fd (-1: none). On kBpfMap / kSoOriginalDst *out holds the destination. Three or four
// syscalls, no allocation.
DstSource Recover(int fd, const SockAddr& peer, int orig_by_peer_map_fd, SockAddr* out);

// "1.2.3.4:80" / "[::1]:80" into buf; the text (empty if it does not fit).
std::string_view Format(const SockAddr& a, char* buf, size_t cap);

}  // namespace zproxy::dataplane::sidecar
