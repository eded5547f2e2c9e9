// HTTP CONNECT targets and the allowlist they are checked against (Listener.connect).
// Shared by zproxyd (config validation names the bad pattern) and the data plane (which
// checks each CONNECT on its hot path: no allocation, no DNS).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/net_address.h"

namespace zproxy {

// One allow pattern: an IP literal or CIDR and a port or any port.
//   "10.0.0.5:22"  "127.0.0.1:*"  "192.168.1.0/24:443"  "[::1]:8080"  "[2001:db8::/32]:*"
struct ConnectAllowRule {
  int family = 0;  // AF_INET or AF_INET6
  uint8_t addr[16] = {};
  uint8_t prefix_len = 0;  // bits of addr that must match
  uint16_t port = 0;       // 0 = any port
};

// On failure returns false and sets *error ("expected IP[/prefix]:port or IP:*", ...).
bool ParseConnectAllowRule(std::string_view text, ConnectAllowRule* out, std::string* error);

enum class ConnectTargetError : uint8_t {
  kNone,
  kMalformed,  // not host:port, port missing, 0 or out of range -> 400
  kHostname,   // a name, not an IP literal: the data plane resolves no names -> 403
};

// Parses a CONNECT request's authority-form target ("1.2.3.4:443", "[::1]:22").
ConnectTargetError ParseConnectTarget(std::string_view authority, NetAddress* out);

bool ConnectAllowed(std::span<const ConnectAllowRule> rules, const NetAddress& target);

}  // namespace zproxy
