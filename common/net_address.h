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

// Splits "host:port" or "[v6]:port" without resolving anything (same errors as above).
bool SplitHostPort(std::string_view text, std::string* host, uint16_t* port, std::string* error);

// True for an IPv4 or IPv6 literal (no brackets).
bool IsIpLiteral(const std::string& host);

// A host name DNS can answer for (RFC 1123 labels: letters, digits, '-' and '_' inside,
// 1..63 bytes each, 253 in all, an optional final dot). False with *why otherwise.
bool IsDnsName(std::string_view host, std::string* why);

}  // namespace zproxy
