#include "dataplane/proxy/request_id.h"

#include <sys/random.h>

#include <chrono>

namespace zproxy::proxy {
namespace {

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t SplitMix(uint64_t* x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

RequestIdGenerator::RequestIdGenerator() {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed)) {
    // Only before the kernel's pool is initialised (early boot): IDs need to be unique,
    // not secret, so the clock and this object's address are enough then.
    seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
           reinterpret_cast<uintptr_t>(this);
  }
  for (uint64_t& s : s_) s = SplitMix(&seed);
}

uint64_t RequestIdGenerator::NextRandom() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

std::string_view RequestIdGenerator::Next(std::span<char, kLength> out) {
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t hi = NextRandom();
  uint64_t lo = NextRandom();
  // RFC 9562 §5.4: version 4 in the 13th digit, variant 10xx in the 17th.
  hi = (hi & ~0xf000ULL) | 0x4000ULL;
  lo = (lo & ~(0xcULL << 60)) | (0x8ULL << 60);
  size_t o = 0;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out[o++] = '-';
    uint64_t word = i < 16 ? hi : lo;
    int shift = 60 - 4 * (i % 16);
    out[o++] = kHex[(word >> shift) & 0xf];
  }
  return std::string_view(out.data(), kLength);
}

}  // namespace zproxy::proxy
