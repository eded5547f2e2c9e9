// Memory blocks for rewritten message heads, local responses and head reassembly, in
// two size classes: small blocks (2 KiB) hold nearly every head, large blocks hold the
// biggest head a listener allows. Carved from chunks that are never returned to the OS
// (the pool grows to the peak concurrency), so the request path does not call malloc.
// Indices carry the class in their top bit.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace zproxy::dataplane {

class BlockPool {
 public:
  static constexpr uint32_t kSmallSize = 2048;
  static constexpr uint32_t kLargeBit = 0x80000000u;

  explicit BlockPool(uint32_t large_size) : small_(kSmallSize), large_(large_size) {}

  // A block of at least `bytes` (at most large_size()).
  uint32_t Alloc(size_t bytes) {
    return bytes <= kSmallSize ? small_.Alloc() : (large_.Alloc() | kLargeBit);
  }
  uint32_t AllocLarge() { return large_.Alloc() | kLargeBit; }
  void Free(uint32_t idx) {
    if (idx & kLargeBit)
      large_.Free(idx & ~kLargeBit);
    else
      small_.Free(idx);
  }
  char* Data(uint32_t idx) {
    return (idx & kLargeBit) ? large_.Data(idx & ~kLargeBit) : small_.Data(idx);
  }
  uint32_t Capacity(uint32_t idx) const { return (idx & kLargeBit) ? large_.size : kSmallSize; }
  uint32_t large_size() const { return large_.size; }

 private:
  struct Class {
    explicit Class(uint32_t s) : size(s) {}
    uint32_t Alloc() {
      if (free.empty()) {
        uint32_t base = static_cast<uint32_t>(chunks.size()) * kPerChunk;
        // Not value-initialized: pages become resident only when written.
        chunks.push_back(std::unique_ptr<char[]>(new char[static_cast<size_t>(size) * kPerChunk]));
        for (uint32_t i = kPerChunk; i-- > 0;) free.push_back(base + i);
      }
      uint32_t idx = free.back();
      free.pop_back();
      return idx;
    }
    void Free(uint32_t idx) { free.push_back(idx); }
    char* Data(uint32_t idx) {
      return chunks[idx / kPerChunk].get() + static_cast<size_t>(idx % kPerChunk) * size;
    }
    uint32_t size;
    std::vector<std::unique_ptr<char[]>> chunks;
    std::vector<uint32_t> free;
  };
  static constexpr uint32_t kPerChunk = 32;
  Class small_;
  Class large_;
};

}  // namespace zproxy::dataplane
