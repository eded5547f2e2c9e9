#include "dataplane/io/buffer_ring.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace zproxy::io {

namespace {
constexpr uint32_t kInitialTarget = 64;
}  // namespace

BufferRing::~BufferRing() {
  if (br_ != nullptr) {
    io_uring_unregister_buf_ring(ring_, group_id_);
    munmap(br_, ring_bytes_);
  }
  if (base_ != nullptr) munmap(base_, data_bytes_);
}

bool BufferRing::Init(io_uring* ring, uint16_t group_id, uint32_t count, uint32_t size,
                      std::string* error) {
  ring_ = ring;
  group_id_ = group_id;
  count_ = count;
  size_ = size;
  mask_ = io_uring_buf_ring_mask(count);
  ring_bytes_ = sizeof(io_uring_buf) * count;
  void* mem =
      mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    *error = std::string("mmap of the buffer ring failed: ") + strerror(errno);
    return false;
  }
  br_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(br_);
  reg.ring_entries = count;
  reg.bgid = group_id;
  int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc != 0) {
    munmap(br_, ring_bytes_);
    br_ = nullptr;
    *error = std::string("registering the provided buffer ring failed (kernel >= 5.19 needed): ") +
             strerror(-rc);
    return false;
  }
  // Buffer memory is anonymous and untouched: pages become resident only when the kernel
  // first writes into a buffer.
  data_bytes_ = static_cast<size_t>(count) * size;
  mem = mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
  if (mem == MAP_FAILED) {
    *error = std::string("mmap of receive buffers failed: ") + strerror(errno);
    return false;
  }
  base_ = static_cast<char*>(mem);
  // Start with a small working set; OnExhausted doubles it under load.
  target_ = std::min<uint32_t>(count, kInitialTarget);
  spare_.reserve(count);
  TopUp();
  Commit();
  return true;
}

}  // namespace zproxy::io
