#include "dataplane/ktls/testing/test_support.h"

#include <errno.h>
#include <linux/tls.h>
#include <sys/socket.h>

#include <cstring>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace zproxy::ktls::testing {

void ExpectKernelOutcome(const Result& r) {
  if (Detect() == Support::kPresent) {
    EXPECT_EQ(r.outcome, Outcome::kInstalled) << "got " << OutcomeName(r.outcome) << " errno "
                                              << r.error << " (" << strerror(r.error) << ")";
  } else {
    EXPECT_EQ(r.outcome, Outcome::kNoKernelSupport) << "got " << OutcomeName(r.outcome);
    EXPECT_EQ(r.error, ENOENT);
  }
}

void PeerThread::Join() {
  if (!thread_.joinable()) return;
  if (!done_) {
    ::shutdown(pair_->server.get(), SHUT_RDWR);
    ::shutdown(pair_->client.get(), SHUT_RDWR);
  }
  thread_.join();
}

uint16_t KernelTxCipher(int fd) {
  // With exactly sizeof(tls_crypto_info) the kernel returns only version and cipher (a
  // bigger buffer must match the cipher's struct size exactly, else EINVAL).
  tls_crypto_info info{};
  socklen_t len = sizeof(info);
  if (::getsockopt(fd, SOL_TLS, TLS_TX, &info, &len) != 0) return 0;
  return info.cipher_type;
}

uint16_t KernelCipherFor(uint16_t iana_id) {
  switch (iana_id) {
    case 0x1301:
    case 0xC02B:
      return TLS_CIPHER_AES_GCM_128;
    case 0x1302:
    case 0xC02C:
      return TLS_CIPHER_AES_GCM_256;
    case 0x1303:
    case 0xCCA9:
      return TLS_CIPHER_CHACHA20_POLY1305;
  }
  return 0;
}

}  // namespace zproxy::ktls::testing
