// X-Request-Id values: random UUIDs (version 4), as Envoy generates them. One generator per
// worker (no shared state, no lock), seeded from the kernel's random source once.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace zproxy::proxy {

class RequestIdGenerator {
 public:
  static constexpr size_t kLength = 36;  // 8-4-4-4-12 hex digits

  RequestIdGenerator();
  // Writes a new UUID into out (kLength bytes) and returns it.
  std::string_view Next(std::span<char, kLength> out);
  // A random number (the same xoshiro256** stream): retry backoff jitter.
  uint64_t NextRandom();

 private:
  uint64_t s_[4];
};

}  // namespace zproxy::proxy
