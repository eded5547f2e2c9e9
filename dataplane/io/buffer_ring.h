// Provided buffer ring (IORING_REGISTER_PBUF_RING): the kernel picks a buffer only when
// data arrives, so an idle connection with a multishot recv armed owns no buffer memory.
// liburing 2.3 lacks io_uring_setup_buf_ring, so the ring memory is mmapped here.
#pragma once

#include <liburing.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace zproxy::io {

class BufferRing {
 public:
  BufferRing() = default;
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  // count must be a power of two <= 32768.
  bool Init(io_uring* ring, uint16_t group_id, uint32_t count, uint32_t size, std::string* error);

  char* Data(uint16_t bid) const { return base_ + static_cast<size_t>(bid) * size_; }
  uint32_t buffer_size() const { return size_; }
  uint16_t group_id() const { return group_id_; }

  // A buffer the kernel filled (a recv completion with IORING_CQE_F_BUFFER).
  void OnConsumed() {
    provided_--;
    if (provided_ < target_ / 2) TopUp();
  }
  // The ring ran dry: provide more buffers from now on (up to the configured count).
  void OnExhausted() {
    target_ = std::min(count_, target_ * 2);
    TopUp();
  }
  // Returns a buffer. It goes back to the kernel only while the ring holds fewer than
  // the target; otherwise it waits on a LIFO stack, so the same few recently used (and
  // resident) buffers are reused instead of cycling through all of them.
  void Recycle(uint16_t bid) {
    if (provided_ < target_) {
      Provide(bid);
    } else {
      spare_.push_back(bid);
    }
  }
  void Commit() {
    if (pending_ != 0) {
      io_uring_buf_ring_advance(br_, pending_);
      pending_ = 0;
    }
  }
  uint32_t provided() const { return provided_; }
  uint32_t target() const { return target_; }

 private:
  void Provide(uint16_t bid) {
    io_uring_buf_ring_add(br_, Data(bid), size_, bid, mask_, pending_++);
    provided_++;
  }
  void TopUp() {
    while (provided_ < target_) {
      if (!spare_.empty()) {
        Provide(spare_.back());
        spare_.pop_back();
      } else if (next_fresh_ < count_) {
        Provide(static_cast<uint16_t>(next_fresh_++));
      } else {
        break;
      }
    }
  }

  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  size_t ring_bytes_ = 0;
  char* base_ = nullptr;
  size_t data_bytes_ = 0;
  uint32_t size_ = 0;
  uint32_t count_ = 0;
  int mask_ = 0;
  int pending_ = 0;
  uint32_t provided_ = 0;    // buffers the kernel may fill right now
  uint32_t target_ = 0;      // how many to keep provided; grows on exhaustion
  uint32_t next_fresh_ = 0;  // buffers [next_fresh_, count_) were never provided
  std::vector<uint16_t> spare_;
  uint16_t group_id_ = 0;
};

}  // namespace zproxy::io
