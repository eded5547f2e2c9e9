#include "dataplane/http1/simd_scan.h"

#include <atomic>
#include <cstring>

#include "dataplane/http1/http1.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace zproxy::http1 {
namespace internal {

const char* ScanFieldValueScalar(const char* p, const char* end) {
  for (; p < end; p++) {
    unsigned char c = static_cast<unsigned char>(*p);
    if ((c < 0x20 && c != '\t') || c == 0x7F) return p;
  }
  return end;
}

const char* ScanTargetScalar(const char* p, const char* end) {
  for (; p < end; p++) {
    unsigned char c = static_cast<unsigned char>(*p);
    if (c <= 0x20 || c >= 0x7F) return p;
  }
  return end;
}

#if defined(__x86_64__)

// SSE2 is part of x86-64, so these need no target attribute.
const char* ScanFieldValueSse2(const char* p, const char* end) {
  const __m128i k1f = _mm_set1_epi8(0x1F);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i del = _mm_set1_epi8(0x7F);
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // v <= 0x1F (unsigned) exactly when min(v, 0x1F) == v.
    __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, k1f), v);
    ctl = _mm_andnot_si128(_mm_cmpeq_epi8(v, tab), ctl);
    __m128i bad = _mm_or_si128(ctl, _mm_cmpeq_epi8(v, del));
    unsigned m = static_cast<unsigned>(_mm_movemask_epi8(bad));
    if (m != 0) return p + __builtin_ctz(m);
    p += 16;
  }
  return ScanFieldValueScalar(p, end);
}

const char* ScanTargetSse2(const char* p, const char* end) {
  // Signed compares: bytes >= 0x80 are negative, so "> 0x20 and < 0x7F" rejects them too.
  const __m128i lo = _mm_set1_epi8(0x20);
  const __m128i hi = _mm_set1_epi8(0x7F);
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    __m128i good = _mm_and_si128(_mm_cmpgt_epi8(v, lo), _mm_cmplt_epi8(v, hi));
    unsigned m = ~static_cast<unsigned>(_mm_movemask_epi8(good)) & 0xFFFFu;
    if (m != 0) return p + __builtin_ctz(m);
    p += 16;
  }
  return ScanTargetScalar(p, end);
}

// The AVX2 versions finish with the SSE2 step so that at most 15 bytes go through the
// scalar loop: field values are typically 10-60 bytes, so the tail matters.
__attribute__((target("avx2"))) const char* ScanFieldValueAvx2(const char* p, const char* end) {
  const __m256i k1f = _mm256_set1_epi8(0x1F);
  const __m256i tab = _mm256_set1_epi8('\t');
  const __m256i del = _mm256_set1_epi8(0x7F);
  while (end - p >= 32) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i ctl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, k1f), v);
    ctl = _mm256_andnot_si256(_mm256_cmpeq_epi8(v, tab), ctl);
    __m256i bad = _mm256_or_si256(ctl, _mm256_cmpeq_epi8(v, del));
    unsigned m = static_cast<unsigned>(_mm256_movemask_epi8(bad));
    if (m != 0) return p + __builtin_ctz(m);
    p += 32;
  }
  return ScanFieldValueSse2(p, end);
}

__attribute__((target("avx2"))) const char* ScanTargetAvx2(const char* p, const char* end) {
  const __m256i lo = _mm256_set1_epi8(0x20);
  const __m256i hi = _mm256_set1_epi8(0x7F);
  while (end - p >= 32) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i good = _mm256_and_si256(_mm256_cmpgt_epi8(v, lo), _mm256_cmpgt_epi8(hi, v));
    unsigned m = ~static_cast<unsigned>(_mm256_movemask_epi8(good));
    if (m != 0) return p + __builtin_ctz(m);
    p += 32;
  }
  return ScanTargetSse2(p, end);
}

bool CpuHasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}

#else  // !__x86_64__: everything is scalar.

const char* ScanFieldValueSse2(const char* p, const char* end) {
  return ScanFieldValueScalar(p, end);
}
const char* ScanTargetSse2(const char* p, const char* end) { return ScanTargetScalar(p, end); }
const char* ScanFieldValueAvx2(const char* p, const char* end) {
  return ScanFieldValueScalar(p, end);
}
const char* ScanTargetAvx2(const char* p, const char* end) { return ScanTargetScalar(p, end); }
bool CpuHasAvx2() { return false; }

#endif

namespace {

using ScanFn = const char* (*)(const char*, const char*);

struct Level {
  const char* name;
  ScanFn value;
  ScanFn target;
};

constexpr Level kAvx2{"avx2", ScanFieldValueAvx2, ScanTargetAvx2};
#if defined(__x86_64__)
constexpr Level kSse2{"sse2", ScanFieldValueSse2, ScanTargetSse2};
#else
constexpr Level kSse2{"scalar", ScanFieldValueScalar, ScanTargetScalar};
#endif
constexpr Level kScalar{"scalar", ScanFieldValueScalar, ScanTargetScalar};

// Constant-initialized, so parsing from another translation unit's static initializer
// still works; the first call resolves the level. Relaxed atomics cost a plain load on
// x86 and keep concurrent first calls from being a data race.
const char* ResolveValue(const char* p, const char* end);
const char* ResolveTarget(const char* p, const char* end);
std::atomic<const Level*> g_level{nullptr};
std::atomic<ScanFn> g_value{ResolveValue};
std::atomic<ScanFn> g_target{ResolveTarget};

void Install(const Level* l) {
  g_value.store(l->value, std::memory_order_relaxed);
  g_target.store(l->target, std::memory_order_relaxed);
  g_level.store(l, std::memory_order_relaxed);
}

const Level* Detect() { return CpuHasAvx2() ? &kAvx2 : &kSse2; }

const Level* Current() {
  const Level* l = g_level.load(std::memory_order_relaxed);
  if (l == nullptr) {
    l = Detect();
    Install(l);
  }
  return l;
}

const char* ResolveValue(const char* p, const char* end) { return Current()->value(p, end); }
const char* ResolveTarget(const char* p, const char* end) { return Current()->target(p, end); }

}  // namespace

const char* ScanFieldValue(const char* p, const char* end) {
  return g_value.load(std::memory_order_relaxed)(p, end);
}

const char* ScanTarget(const char* p, const char* end) {
  return g_target.load(std::memory_order_relaxed)(p, end);
}

}  // namespace internal

const char* SimdLevel() { return internal::Current()->name; }

bool ForceSimdLevelForTesting(const char* level) {
  using internal::kAvx2;
  using internal::kScalar;
  using internal::kSse2;
  if (strcmp(level, "avx2") == 0) {
    if (!internal::CpuHasAvx2()) return false;
    internal::Install(&kAvx2);
    return true;
  }
  if (strcmp(level, "sse2") == 0) {
#if defined(__x86_64__)
    internal::Install(&kSse2);
    return true;
#else
    return false;
#endif
  }
  if (strcmp(level, "scalar") == 0) {
    internal::Install(&kScalar);
    return true;
  }
  return false;
}

}  // namespace zproxy::http1
