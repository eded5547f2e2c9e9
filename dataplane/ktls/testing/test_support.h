// Shared by the kTLS loopback tests: what a test expects from TryInstall on this kernel,
// a peer thread that cannot hang a failed test, and the kernel's view of a kTLS socket.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <thread>

#include "dataplane/ktls/ktls.h"
#include "dataplane/ktls/testing/tls_peers.h"

namespace zproxy::ktls::testing {

inline TlsParams Tls13() { return {TLS1_3_VERSION, TLS1_3_VERSION, nullptr}; }
inline TlsParams Tls12(const char* ciphers) { return {TLS1_2_VERSION, TLS1_2_VERSION, ciphers}; }

// With kTLS in the kernel every eligible connection must really be offloaded; without it
// the fallback must be the one taken.
void ExpectKernelOutcome(const Result& r);

// Joins a peer thread on every exit path; shutting the sockets down first unblocks a peer
// still waiting for bytes after an ASSERT returned early.
class PeerThread {
 public:
  PeerThread(TcpPair* pair, std::function<void()> body) : pair_(pair), thread_(std::move(body)) {}
  ~PeerThread() { Join(); }
  void Join();
  void MarkDone() { done_ = true; }

 private:
  TcpPair* pair_;
  std::thread thread_;
  bool done_ = false;
};

// The kernel's view of the TX keys (only with kTLS): proves which cipher it really runs.
uint16_t KernelTxCipher(int fd);
// The kernel's TLS_CIPHER_* for an IANA suite id (0 if none).
uint16_t KernelCipherFor(uint16_t iana_id);

}  // namespace zproxy::ktls::testing
