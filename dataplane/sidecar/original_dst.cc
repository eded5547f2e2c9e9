#include "dataplane/sidecar/original_dst.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <cstdio>
#include <cstring>

#include "bpf/zproxy_structs.h"

namespace zproxy::dataplane::sidecar {

namespace {
// <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h> (their other
// definitions clash with glibc's <netinet/in.h>).
constexpr int kSoOriginalDst = 80;
constexpr int kIp6tSoOriginalDst = 80;
}  // namespace

const char* DstSourceName(DstSource s) {
  switch (s) {
    case DstSource::kBpfMap:
      return "bpf_map";
    case DstSource::kSoOriginalDst:
      return "so_original_dst";
    case DstSource::kNotRedirected:
      return "not_redirected";
    case DstSource::kUnknown:
    case DstSource::kCount:
      break;
  }
  return "unknown";
}

bool SameAddress(const SockAddr& a, const SockAddr& b) {
  if (a.sa.sa_family != b.sa.sa_family) return false;
  if (a.sa.sa_family == AF_INET) {
    return a.v4.sin_port == b.v4.sin_port && a.v4.sin_addr.s_addr == b.v4.sin_addr.s_addr;
  }
  return a.sa.sa_family == AF_INET6 && a.v6.sin6_port == b.v6.sin6_port &&
         memcmp(&a.v6.sin6_addr, &b.v6.sin6_addr, sizeof(in6_addr)) == 0;
}

namespace {

// The sidecar map's form of an address (bpf/zproxy_structs.h), zeroed where unused so the
// bytes compare equal to what the BPF program wrote.
bool ToMapKey(const SockAddr& a, zproxy_sidecar_addr* k) {
  memset(k, 0, sizeof(*k));
  k->family = a.sa.sa_family;
  if (a.sa.sa_family == AF_INET) {
    k->port = a.v4.sin_port;
    k->addr[0] = a.v4.sin_addr.s_addr;
    return true;
  }
  if (a.sa.sa_family == AF_INET6) {
    k->port = a.v6.sin6_port;
    memcpy(k->addr, &a.v6.sin6_addr, sizeof(k->addr));
    return true;
  }
  return false;
}

bool FromMapValue(const zproxy_sidecar_addr& v, SockAddr* out) {
  memset(out, 0, sizeof(*out));
  if (v.family == AF_INET) {
    out->v4.sin_family = AF_INET;
    out->v4.sin_port = v.port;
    out->v4.sin_addr.s_addr = v.addr[0];
    return true;
  }
  if (v.family == AF_INET6) {
    out->v6.sin6_family = AF_INET6;
    out->v6.sin6_port = v.port;
    memcpy(&out->v6.sin6_addr, v.addr, sizeof(v.addr));
    return true;
  }
  return false;
}

}  // namespace

DstSource Recover(int fd, const SockAddr& peer, int orig_by_peer_map_fd, SockAddr* out) {
  // The sidecar's programs first: they saw the connect itself. The entry is the
  // application's, written when its side was established, which on loopback is before
  // this side is accepted.
  if (orig_by_peer_map_fd >= 0) {
    zproxy_sidecar_addr key;
    zproxy_sidecar_addr value;
    if (ToMapKey(peer, &key) && bpf_map_lookup_elem(orig_by_peer_map_fd, &key, &value) == 0 &&
        FromMapValue(value, out)) {
      return DstSource::kBpfMap;
    }
  }
  SockAddr local;
  socklen_t len = sizeof(local);
  if (getsockname(fd, &local.sa, &len) != 0) return DstSource::kUnknown;
  // A REDIRECT rule's NAT: conntrack remembers the tuple before the rewrite. Without a
  // conntrack entry (no rule ever matched) the kernel answers ENOENT or ENOPROTOOPT.
  memset(out, 0, sizeof(*out));
  len = local.sa.sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  int rc = local.sa.sa_family == AF_INET6
               ? getsockopt(fd, SOL_IPV6, kIp6tSoOriginalDst, &out->v6, &len)
               : getsockopt(fd, SOL_IP, kSoOriginalDst, &out->v4, &len);
  if (rc != 0) return DstSource::kUnknown;
  // Tracked but not rewritten: the client dialled this listener itself.
  if (SameAddress(*out, local)) return DstSource::kNotRedirected;
  return DstSource::kSoOriginalDst;
}

std::string_view Format(const SockAddr& a, char* buf, size_t cap) {
  char ip[INET6_ADDRSTRLEN];
  int n = -1;
  if (a.sa.sa_family == AF_INET && inet_ntop(AF_INET, &a.v4.sin_addr, ip, sizeof(ip)) != nullptr) {
    n = snprintf(buf, cap, "%s:%u", ip, ntohs(a.v4.sin_port));
  } else if (a.sa.sa_family == AF_INET6 &&
             inet_ntop(AF_INET6, &a.v6.sin6_addr, ip, sizeof(ip)) != nullptr) {
    n = snprintf(buf, cap, "[%s]:%u", ip, ntohs(a.v6.sin6_port));
  }
  if (n < 0 || static_cast<size_t>(n) >= cap) return {};
  return std::string_view(buf, static_cast<size_t>(n));
}

}  // namespace zproxy::dataplane::sidecar
