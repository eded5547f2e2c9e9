// Index-addressed object pool with stable addresses (chunked storage) and a free list.
// Objects are addressed by uint32 index so they fit into io_uring user_data, and never
// move, so the kernel may hold pointers into them (iovecs, sockaddrs) while ops run.
// Growth allocates a chunk (startup or load increase); steady state allocates nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace zproxy::dataplane {

constexpr uint32_t kNil = 0xffffffffu;

template <typename T, uint32_t kChunk = 256>
class Slab {
 public:
  Slab() = default;
  Slab(const Slab&) = delete;
  Slab& operator=(const Slab&) = delete;

  // Returns the index of a default-constructed object.
  uint32_t Alloc() {
    if (free_.empty()) Grow();
    uint32_t idx = free_.back();
    free_.pop_back();
    T& obj = Get(idx);
    obj.Reset();
    live_++;
    return idx;
  }
  void Free(uint32_t idx) {
    free_.push_back(idx);
    live_--;
  }
  T& Get(uint32_t idx) { return chunks_[idx / kChunk][idx % kChunk]; }
  const T& Get(uint32_t idx) const { return chunks_[idx / kChunk][idx % kChunk]; }
  uint32_t live() const { return live_; }
  uint32_t capacity() const { return static_cast<uint32_t>(chunks_.size()) * kChunk; }

 private:
  void Grow() {
    uint32_t base = capacity();
    chunks_.push_back(std::make_unique<T[]>(kChunk));
    free_.reserve(base + kChunk);
    for (uint32_t i = kChunk; i-- > 0;) free_.push_back(base + i);
  }

  std::vector<std::unique_ptr<T[]>> chunks_;
  std::vector<uint32_t> free_;
  uint32_t live_ = 0;
};

}  // namespace zproxy::dataplane
