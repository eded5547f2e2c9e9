// Fixed-size memory blocks for rewritten message heads and head reassembly. Allocated
// from the worker's slab (never freed back to the OS; the pool only grows to the peak
// concurrency), so the request path does not call malloc.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/worker/slab.h"

namespace zproxy::dataplane {

class BlockPool {
 public:
  explicit BlockPool(uint32_t block_size) : size_(block_size) {}

  uint32_t Alloc() {
    if (free_.empty()) {
      uint32_t base = static_cast<uint32_t>(chunks_.size()) * kPerChunk;
      // Not value-initialized: pages become resident only when a head is written.
      chunks_.push_back(std::unique_ptr<char[]>(new char[static_cast<size_t>(size_) * kPerChunk]));
      for (uint32_t i = kPerChunk; i-- > 0;) free_.push_back(base + i);
    }
    uint32_t idx = free_.back();
    free_.pop_back();
    return idx;
  }
  void Free(uint32_t idx) { free_.push_back(idx); }
  char* Data(uint32_t idx) {
    return chunks_[idx / kPerChunk].get() + static_cast<size_t>(idx % kPerChunk) * size_;
  }
  uint32_t block_size() const { return size_; }

 private:
  static constexpr uint32_t kPerChunk = 16;
  uint32_t size_;
  std::vector<std::unique_ptr<char[]>> chunks_;
  std::vector<uint32_t> free_;
};

}  // namespace zproxy::dataplane
