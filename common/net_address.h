// "host:port" parsing into socket addresses (IPv4, "[v6]:port", or a resolvable name).
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>

namespace zproxy {

struct NetAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;

  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
  int family() const { return storage.ss_family; }
  uint16_t port() const;
  std::string ToString() const;  // "1.2.3.4:80" / "[::1]:80"
};

// Parses "host:port". Names are resolved with getaddrinfo (numeric first, so no DNS
// lookup for literal addresses). On failure returns false and sets *error to a message
// suitable for a config error ("missing port", "port out of range", ...).
bool ParseNetAddress(std::string_view text, NetAddress* out, std::string* error);

}  // namespace zproxy
