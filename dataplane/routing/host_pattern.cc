#include "dataplane/routing/host_pattern.h"

#include <cstring>

namespace zproxy::routing {
namespace {

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c; }

// Removes ":port" from a Host value. An IPv6 literal keeps its brackets ("[::1]:80" ->
// "[::1]") so it compares equal to the configured "[::1]". A malformed bracket form is
// returned unchanged: it will not match anything, which is the right answer for garbage.
std::string_view StripPort(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  size_t colon = host.find(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

bool IsHostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

}  // namespace

NormalizedHost::NormalizedHost(std::string_view host) {
  host = StripPort(host);
  // "example.com." is the same name as "example.com" (absolute form); clients do send it.
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (host.size() > sizeof(buf_)) return;
  for (size_t i = 0; i < host.size(); ++i) buf_[i] = AsciiLower(host[i]);
  len_ = host.size();
  valid_ = true;
}

bool HostPattern::Compile(std::string_view text, HostPattern* out, std::string* error) {
  std::string key;
  key.reserve(text.size());
  for (char c : text) key.push_back(AsciiLower(c));
  bool wildcard = false;
  std::string_view name = key;
  if (name.starts_with("*.")) {
    wildcard = true;
    name.remove_prefix(2);
  }
  if (name == "*") {
    *error = "\"*\" is not a host pattern; leave hosts empty to match any host";
    return false;
  }
  if (name.empty()) {
    *error = "empty host name";
    return false;
  }
  if (name.front() == '[') {
    // IPv6 literal: "[...]" with hex digits, ':' and '.' (embedded IPv4) inside.
    if (wildcard || name.back() != ']' || name.size() < 4) {
      *error = "malformed IPv6 literal \"" + std::string(text) + "\" (expected \"[addr]\")";
      return false;
    }
    for (char c : name.substr(1, name.size() - 2)) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.')) {
        *error = "malformed IPv6 literal \"" + std::string(text) + "\"";
        return false;
      }
    }
  } else {
    for (char c : name) {
      if (c == ':') {
        // The request's port is stripped before matching, so a pattern with a port
        // would silently never match; reject it instead.
        *error = "host \"" + std::string(text) + "\" must not contain a port";
        return false;
      }
      if (c == '*') {
        *error = "wildcard only allowed as a leading \"*.\" label in \"" + std::string(text) + "\"";
        return false;
      }
      if (!IsHostChar(c)) {
        *error = "invalid character in host \"" + std::string(text) + "\"";
        return false;
      }
    }
    if (name.back() == '.') name.remove_suffix(1);  // same rule as NormalizedHost
    if (name.empty() || name.front() == '.' || name.find("..") != std::string_view::npos) {
      *error = "empty label in host \"" + std::string(text) + "\"";
      return false;
    }
  }
  out->wildcard_ = wildcard;
  // A wildcard keeps its dot: "*.example.com" is stored as ".example.com" so a suffix
  // compare cannot match "badexample.com".
  out->key_ = wildcard ? "." + std::string(name) : std::string(name);
  return true;
}

bool HostPattern::Matches(const NormalizedHost& host) const {
  if (!host.valid()) return false;
  std::string_view h = host.view();
  if (!wildcard_)
    return h.size() == key_.size() && std::memcmp(h.data(), key_.data(), h.size()) == 0;
  // At least one character before the suffix: "*.example.com" does not match
  // "example.com" (nor ".example.com"), but does match any depth ("a.b.example.com").
  return h.size() > key_.size() &&
         std::memcmp(h.data() + h.size() - key_.size(), key_.data(), key_.size()) == 0;
}

}  // namespace zproxy::routing
