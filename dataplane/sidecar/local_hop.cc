#include "dataplane/sidecar/local_hop.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>

namespace zproxy::dataplane {

namespace {

// `sa` as the program stores it; false unless it is a loopback address.
bool Fill(const sockaddr_storage& sa, uint32_t ip[4], uint32_t* port) {
  if (sa.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&sa);
    ip[0] = ip[1] = 0;
    ip[2] = htonl(0xffff);
    ip[3] = v4->sin_addr.s_addr;
    *port = ntohs(v4->sin_port);
    return (ntohl(ip[3]) >> 24) == 127;
  }
  if (sa.ss_family != AF_INET6) return false;
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&sa);
  memcpy(ip, &v6->sin6_addr, 16);
  *port = ntohs(v6->sin6_port);
  if (ip[0] != 0 || ip[1] != 0) return false;
  if (ip[2] == 0 && ip[3] == htonl(1)) return true;
  return ip[2] == htonl(0xffff) && (ntohl(ip[3]) >> 24) == 127;
}

}  // namespace

bool LocalHopKeyOf(int fd, zproxy_lh_key* key) {
  sockaddr_storage local{}, remote{};
  socklen_t ll = sizeof(local), rl = sizeof(remote);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
      getpeername(fd, reinterpret_cast<sockaddr*>(&remote), &rl) != 0) {
    return false;
  }
  *key = zproxy_lh_key{};
  return Fill(local, key->local_ip, &key->local_port) &&
         Fill(remote, key->remote_ip, &key->remote_port);
}

bool IsLocalHop(int map_fd, int fd) {
  zproxy_lh_key own;
  if (map_fd < 0 || !LocalHopKeyOf(fd, &own)) return false;
  zproxy_lh_key peer{};
  memcpy(peer.local_ip, own.remote_ip, 16);
  memcpy(peer.remote_ip, own.local_ip, 16);
  peer.local_port = own.remote_port;
  peer.remote_port = own.local_port;
  uint64_t cookie;
  return bpf_map_lookup_elem(map_fd, &own, &cookie) == 0 &&
         bpf_map_lookup_elem(map_fd, &peer, &cookie) == 0;
}

}  // namespace zproxy::dataplane
