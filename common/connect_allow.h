// HTTP CONNECT targets and the allowlist they are checked against (Listener.connect).
// Shared by zproxyd (config validation names the bad pattern) and the data plane (which
// checks each CONNECT on its hot path: no allocation).
//
// Two kinds of pattern (docs/websocket-connect.md, "CONNECT"):
//   IP literal or CIDR: "10.0.0.5:22" "127.0.0.1:*" "192.168.1.0/24:443" "[::1]:8080"
//                       "[2001:db8::/32]:*"  -- checked against IP targets and against the
//                       addresses a host-name target resolves to;
//   host name:          "api.internal:443" "localhost:*" (exact) and "*.svc.cluster.local:443"
//                       (any name with at least one more label in front of the suffix) --
//                       checked against the name a CONNECT asks for, case-insensitively.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/net_address.h"

namespace zproxy {

// Longest host name (RFC 1035: 253 characters without the trailing dot).
constexpr size_t kMaxHostName = 253;

// One allow pattern: an IP literal or CIDR, or a host name (exact or "*." suffix), and a
// port or any port.
struct ConnectAllowRule {
  enum class Kind : uint8_t { kIp, kName };
  Kind kind = Kind::kIp;
  int family = 0;  // kIp: AF_INET or AF_INET6
  uint8_t addr[16] = {};
  uint8_t prefix_len = 0;  // kIp: bits of addr that must match
  uint16_t port = 0;       // 0 = any port
  // kName: lower case, no trailing dot. For a wildcard, the suffix including its leading
  // dot (".svc.cluster.local"): a target matches when it ends with it and is longer.
  std::string name;
  bool wildcard = false;
};

// On failure returns false and sets *error ("expected IP[/prefix]:port or IP:*", ...).
bool ParseConnectAllowRule(std::string_view text, ConnectAllowRule* out, std::string* error);

enum class ConnectTargetError : uint8_t {
  kNone,
  kMalformed,  // not host:port, port missing, 0 or out of range, not a valid name -> 400
  kHostname,   // a host name (not an IP literal): resolved before it can be connected
};

// A CONNECT target that is a host name: normalized (lower case, trailing dot removed).
struct ConnectName {
  char host[kMaxHostName + 1] = {};  // NUL-terminated (getaddrinfo takes it as is)
  uint8_t len = 0;
  uint16_t port = 0;
  std::string_view view() const { return std::string_view(host, len); }
};

// Parses a CONNECT request's authority-form target ("1.2.3.4:443", "[::1]:22",
// "api.internal:443"). An IP literal fills *out; a host name returns kHostname and, when
// `name` is given, fills it. Numeric forms inet_aton would take but that are not dotted
// quads ("127.1", "0x7f.1", "2130706433") are malformed: they would pass for names yet
// reach an address no pattern spelled.
ConnectTargetError ParseConnectTarget(std::string_view authority, NetAddress* out,
                                      ConnectName* name = nullptr);

// IP patterns only: does one of them allow `target` (address and port)?
bool ConnectAllowed(std::span<const ConnectAllowRule> rules, const NetAddress& target);

// Name patterns only: does one of them allow this name and port?
bool ConnectNameAllowed(std::span<const ConnectAllowRule> rules, const ConnectName& target);

// Could an IP pattern allow some address on this port? (If not, and no name pattern allows
// a name, resolving it is pointless: it is denied without a lookup.)
bool ConnectIpRulesForPort(std::span<const ConnectAllowRule> rules, uint16_t port);

}  // namespace zproxy
