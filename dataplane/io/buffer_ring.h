// Provided buffer ring (IORING_REGISTER_PBUF_RING): the kernel picks a buffer only when
// data arrives, so an idle connection with a multishot recv armed owns no buffer memory.
// liburing 2.3 lacks io_uring_setup_buf_ring, so the ring memory is mmapped here.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <string>

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

  // Returns a buffer to the kernel. Batched: Commit() publishes the batch.
  void Recycle(uint16_t bid) {
    io_uring_buf_ring_add(br_, Data(bid), size_, bid, mask_, pending_++);
  }
  void Commit() {
    if (pending_ != 0) {
      io_uring_buf_ring_advance(br_, pending_);
      pending_ = 0;
    }
  }

 private:
  io_uring* ring_ = nullptr;
  io_uring_buf_ring* br_ = nullptr;
  size_t ring_bytes_ = 0;
  char* base_ = nullptr;
  size_t data_bytes_ = 0;
  uint32_t size_ = 0;
  uint32_t count_ = 0;
  int mask_ = 0;
  int pending_ = 0;
  uint16_t group_id_ = 0;
};

}  // namespace zproxy::io
