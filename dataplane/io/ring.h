// One io_uring per worker: setup with the best flags the kernel accepts, feature probe,
// and an error that names the cause when io_uring cannot be used at all.
#pragma once

#include <liburing.h>

#include <string>

namespace zproxy::io {

// liburing 2.3 and Debian's 6.1 headers predate IORING_OP_FIXED_FD_INSTALL (kernel 6.8);
// the opcode is ABI, guarded by the probe (RingFeatures::fixed_fd_install).
inline constexpr int kOpFixedFdInstall = 54;

struct RingOptions {
  unsigned sq_depth = 4096;
  bool sqpoll = false;
  unsigned sqpoll_idle_ms = 1000;
  int sqpoll_cpu = -1;
  unsigned max_files = 65536;  // sparse registered-file table size
};

struct RingFeatures {
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool sqpoll = false;
  bool send_zc = false;
  bool recv_multishot = false;
  bool accept_multishot = false;
  bool uring_cmd_sock = false;
  bool registered_files = false;
  bool splice = false;            // IORING_OP_SPLICE and POLL_ADD (splice pass-through)
  bool fixed_fd_install = false;  // IORING_OP_FIXED_FD_INSTALL (6.8+): direct -> regular fd
};

class Ring {
 public:
  Ring() = default;
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Returns false and fills *error with a message naming the cause and the fix.
  bool Init(const RingOptions& options, std::string* error);

  io_uring* raw() { return &ring_; }
  const RingFeatures& features() const { return features_; }

  // Gets an SQE, submitting queued ones first if the SQ is full. Never returns null
  // (the SQ is sized for the worst case of one loop iteration; flushes otherwise).
  io_uring_sqe* Sqe();

 private:
  io_uring ring_{};
  bool initialized_ = false;
  RingFeatures features_;
};

// Describes why io_uring_queue_init failed: EPERM with kernel.io_uring_disabled, EPERM
// from a seccomp filter (containers), ENOSYS (kernel without io_uring or seccomp), ...
std::string DescribeRingSetupError(int err);

}  // namespace zproxy::io
