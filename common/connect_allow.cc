#include "common/connect_allow.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace zproxy {

namespace {

// Splits "host:port" / "[v6]:port" into the address text and the port text; false when
// there is no ':' separating a port.
bool SplitHostPort(std::string_view text, std::string_view* host, std::string_view* port,
                   bool* bracketed) {
  *bracketed = !text.empty() && text.front() == '[';
  if (*bracketed) {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return false;
    }
    *host = text.substr(1, close - 1);
    *port = text.substr(close + 2);
    return true;
  }
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  *host = text.substr(0, colon);
  *port = text.substr(colon + 1);
  // An unbracketed IPv6 literal ("::1:22") is ambiguous: require brackets.
  return host->find(':') == std::string_view::npos;
}

// Decimal port 1..65535 (0 = invalid).
uint16_t ParsePort(std::string_view s) {
  if (s.empty() || s.size() > 5) return 0;
  uint32_t v = 0;
  for (char ch : s) {
    if (ch < '0' || ch > '9') return 0;
    v = v * 10 + static_cast<uint32_t>(ch - '0');
  }
  return v >= 1 && v <= 65535 ? static_cast<uint16_t>(v) : 0;
}

// inet_pton on a view (copied into a NUL-terminated stack buffer). Returns the family or 0.
int ParseIp(std::string_view s, bool want_v6, uint8_t out[16]) {
  char buf[INET6_ADDRSTRLEN];
  if (s.empty() || s.size() >= sizeof(buf)) return 0;
  memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  if (want_v6) return inet_pton(AF_INET6, buf, out) == 1 ? AF_INET6 : 0;
  return inet_pton(AF_INET, buf, out) == 1 ? AF_INET : 0;
}

bool PrefixMatches(const uint8_t* a, const uint8_t* b, unsigned bits) {
  unsigned full = bits / 8;
  if (memcmp(a, b, full) != 0) return false;
  unsigned rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

bool IsNameChar(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '-' || ch == '_';
}

char Lower(char ch) { return ch >= 'A' && ch <= 'Z' ? static_cast<char>(ch - 'A' + 'a') : ch; }

// Checks a host name (RFC 1123 labels; '_' allowed, as in service names) and writes it
// lower-cased, without a trailing dot, NUL-terminated into out[kMaxHostName + 1]. Returns
// the length, or 0 with *why set.
size_t NormalizeHostName(std::string_view in, char* out, const char** why) {
  if (!in.empty() && in.back() == '.') in.remove_suffix(1);
  if (in.empty() || in.size() > kMaxHostName) {
    *why = "a host name has 1..253 characters";
    return 0;
  }
  size_t label = 0;
  for (size_t i = 0; i < in.size(); i++) {
    char ch = in[i];
    if (ch == '.') {
      if (label == 0 || in[i - 1] == '-') {
        *why = "empty label, or a label ending in '-'";
        return 0;
      }
      label = 0;
    } else {
      if (!IsNameChar(ch)) {
        *why = "a host name has letters, digits, '-', '_' and dots only";
        return 0;
      }
      if (label == 0 && ch == '-') {
        *why = "a label starts with '-'";
        return 0;
      }
      if (++label > 63) {
        *why = "a label is longer than 63 characters";
        return 0;
      }
    }
    out[i] = Lower(ch);
  }
  if (label == 0) {  // "a.." (one trailing dot is allowed, not two)
    *why = "empty label";
    return 0;
  }
  if (in.back() == '-') {
    *why = "a label ends in '-'";
    return 0;
  }
  out[in.size()] = '\0';
  // Numbers inet_aton takes ("127.1", "0x7f.0.0.1", "2130706433") are addresses in
  // disguise: getaddrinfo would turn them into an IP no pattern named.
  in_addr unused;
  if (inet_aton(out, &unused) != 0) {
    *why = "a numeric address that is not a dotted quad";
    return 0;
  }
  return in.size();
}

// True when the text can only be meant as an IPv4 address or CIDR (digits, dots, '/').
bool LooksNumeric(std::string_view s) {
  for (char ch : s) {
    if (!(ch >= '0' && ch <= '9') && ch != '.' && ch != '/') return false;
  }
  return true;
}

bool PortMatches(uint16_t rule_port, uint16_t port) { return rule_port == 0 || rule_port == port; }

}  // namespace

bool ParseConnectAllowRule(std::string_view text, ConnectAllowRule* out, std::string* error) {
  std::string_view host, port;
  bool v6 = false;
  if (!SplitHostPort(text, &host, &port, &v6) || host.empty()) {
    *error =
        "expected IP[/prefix]:port, host.name:port or *.domain:port (port may be *; IPv6 in "
        "brackets), got \"" +
        std::string(text) + "\"";
    return false;
  }
  ConnectAllowRule r;
  if (port == "*") {
    r.port = 0;
  } else if ((r.port = ParsePort(port)) == 0) {
    *error = "port must be 1..65535 or *, got \"" + std::string(text) + "\"";
    return false;
  }
  if (!v6 && !LooksNumeric(host)) {
    // A host name pattern: exact, or "*." and a domain.
    r.kind = ConnectAllowRule::Kind::kName;
    std::string_view name = host;
    if (name.starts_with("*.")) {
      r.wildcard = true;
      name.remove_prefix(2);
    }
    char buf[kMaxHostName + 1];
    const char* why = "";
    size_t n = name.find('*') == std::string_view::npos ? NormalizeHostName(name, buf, &why) : 0;
    if (n == 0) {
      if (name.find('*') != std::string_view::npos || name.find('/') != std::string_view::npos) {
        why = "a wildcard is \"*.\" followed by a domain (\"*.svc.cluster.local:443\")";
      }
      *error = "not an IP literal, CIDR or host name (" + std::string(why) + "), got \"" +
               std::string(text) + "\"";
      return false;
    }
    r.name = r.wildcard ? "." + std::string(buf, n) : std::string(buf, n);
    *out = std::move(r);
    return true;
  }
  std::string_view ip = host;
  unsigned max_bits = v6 ? 128 : 32;
  unsigned bits = max_bits;
  size_t slash = host.find('/');
  if (slash != std::string_view::npos) {
    ip = host.substr(0, slash);
    std::string_view len = host.substr(slash + 1);
    bits = 0;
    bool ok = !len.empty() && len.size() <= 3;
    for (char ch : len) {
      if (ch < '0' || ch > '9') ok = false;
      bits = bits * 10 + static_cast<unsigned>(ch - '0');
    }
    if (!ok || bits > max_bits) {
      *error = "prefix length must be 0.." + std::to_string(max_bits) + ", got \"" +
               std::string(text) + "\"";
      return false;
    }
  }
  r.family = ParseIp(ip, v6, r.addr);
  if (r.family == 0) {
    *error = "not an IP literal, got \"" + std::string(text) + "\"";
    return false;
  }
  r.prefix_len = static_cast<uint8_t>(bits);
  *out = std::move(r);
  return true;
}

ConnectTargetError ParseConnectTarget(std::string_view authority, NetAddress* out,
                                      ConnectName* name) {
  std::string_view host, port_text;
  bool v6 = false;
  if (!SplitHostPort(authority, &host, &port_text, &v6) || host.empty()) {
    return ConnectTargetError::kMalformed;
  }
  uint16_t port = ParsePort(port_text);
  if (port == 0) return ConnectTargetError::kMalformed;
  uint8_t addr[16];
  int family = ParseIp(host, v6, addr);
  if (family == 0) {
    // Bracketed text that is no IPv6 literal is malformed; so is a bad name.
    if (v6) return ConnectTargetError::kMalformed;
    ConnectName parsed;
    const char* why = "";
    size_t n = NormalizeHostName(host, parsed.host, &why);
    if (n == 0) return ConnectTargetError::kMalformed;
    parsed.len = static_cast<uint8_t>(n);
    parsed.port = port;
    if (name != nullptr) *name = parsed;
    return ConnectTargetError::kHostname;
  }
  *out = NetAddress();
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&out->storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr, addr, 4);
    out->len = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    memcpy(&sin6->sin6_addr, addr, 16);
    out->len = sizeof(sockaddr_in6);
  }
  return ConnectTargetError::kNone;
}

bool ConnectAllowed(std::span<const ConnectAllowRule> rules, const NetAddress& target) {
  const uint8_t* addr;
  if (target.family() == AF_INET) {
    addr = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in*>(target.sa())->sin_addr);
  } else {
    addr = reinterpret_cast<const uint8_t*>(
        &reinterpret_cast<const sockaddr_in6*>(target.sa())->sin6_addr);
  }
  uint16_t port = target.port();
  for (const ConnectAllowRule& r : rules) {
    if (r.kind != ConnectAllowRule::Kind::kIp || r.family != target.family()) continue;
    if (!PortMatches(r.port, port)) continue;
    if (PrefixMatches(r.addr, addr, r.prefix_len)) return true;
  }
  return false;
}

bool ConnectNameAllowed(std::span<const ConnectAllowRule> rules, const ConnectName& target) {
  std::string_view name = target.view();
  for (const ConnectAllowRule& r : rules) {
    if (r.kind != ConnectAllowRule::Kind::kName || !PortMatches(r.port, target.port)) continue;
    if (r.wildcard ? (name.size() > r.name.size() && name.ends_with(r.name)) : name == r.name) {
      return true;
    }
  }
  return false;
}

bool ConnectIpRulesForPort(std::span<const ConnectAllowRule> rules, uint16_t port) {
  for (const ConnectAllowRule& r : rules) {
    if (r.kind == ConnectAllowRule::Kind::kIp && PortMatches(r.port, port)) return true;
  }
  return false;
}

}  // namespace zproxy
