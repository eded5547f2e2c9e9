// Host matching for the router: normalizing the request's Host value and comparing it with
// the route's precompiled host patterns, without allocating.
//
// Kept separate from the route table so the normalization rules (port stripping, IPv6
// literals, case folding, trailing dot) have one home and their own tests.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace zproxy::routing {

// The longest host name DNS allows is 253 characters; anything longer cannot equal a
// configured host, so it is only ever matched by "any host" routes.
inline constexpr size_t kMaxHostLength = 255;

// A request host reduced to the form patterns are stored in: port removed, ASCII
// lowercased, one trailing dot removed. Lives on the caller's stack (no heap).
class NormalizedHost {
 public:
  // `host` is the raw Host header value (or :authority): "Example.COM:8080", "[::1]:80".
  explicit NormalizedHost(std::string_view host);

  // False when the value was too long to normalize; such a host matches no pattern.
  bool valid() const { return valid_; }
  std::string_view view() const { return std::string_view(buf_, len_); }

 private:
  char buf_[kMaxHostLength];
  size_t len_ = 0;
  bool valid_ = false;
};

// One entry of a route's `hosts` list, compiled at snapshot build time.
class HostPattern {
 public:
  // Validates and compiles a configured host ("a.example.com", "*.example.com", "[::1]").
  // Returns false with a reason in *error (without the field path; the caller adds it).
  static bool Compile(std::string_view text, HostPattern* out, std::string* error);

  bool Matches(const NormalizedHost& host) const;

  bool wildcard() const { return wildcard_; }
  // Lowercased exact host, or for a wildcard the suffix including the leading dot.
  const std::string& key() const { return key_; }

 private:
  std::string key_;
  bool wildcard_ = false;
};

}  // namespace zproxy::routing
