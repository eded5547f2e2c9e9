// Real BoringSSL handshakes over loopback TCP, then kTLS: the same binary passes on a kernel
// without kTLS (Detect() says absent, TryInstall says no_kernel_support, bytes move through
// BoringSSL) and on one with it (run inside ../shared/ktls-vm: TryInstall must install,
// the server moves plaintext with send/recv and the userspace peer must still decrypt,
// verify and see alerts).
//
//   bazel test //dataplane/ktls:ktls_loopback_test                 (host: fallback)
//   tools/ktls-vm-test                                              (VM: kTLS for real)
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/tls.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/ktls/ktls.h"
#include "dataplane/ktls/records.h"
#include "dataplane/ktls/testing/tls_peers.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

extern char** environ;

namespace zproxy::ktls {
namespace {

using testing::Endpoint;
using testing::TlsParams;

constexpr size_t kBulkBytes = 1 << 20;

bool KernelHasKtls() { return Detect() == Support::kPresent; }

// With kTLS in the kernel every eligible connection must really be offloaded; without it
// the fallback must be the one taken.
void ExpectKernelOutcome(const Result& r) {
  if (KernelHasKtls()) {
    EXPECT_EQ(r.outcome, Outcome::kInstalled) << "got " << OutcomeName(r.outcome) << " errno "
                                              << r.error << " (" << strerror(r.error) << ")";
  } else {
    EXPECT_EQ(r.outcome, Outcome::kNoKernelSupport) << "got " << OutcomeName(r.outcome);
    EXPECT_EQ(r.error, ENOENT);
  }
}

// Joins a peer thread on every exit path; shutting the sockets down first unblocks a peer
// still waiting for bytes after an ASSERT returned early.
class PeerThread {
 public:
  PeerThread(testing::TcpPair* pair, std::function<void()> body)
      : pair_(pair), thread_(std::move(body)) {}
  ~PeerThread() { Join(); }
  void Join() {
    if (!thread_.joinable()) return;
    if (!done_) {
      ::shutdown(pair_->server.get(), SHUT_RDWR);
      ::shutdown(pair_->client.get(), SHUT_RDWR);
    }
    thread_.join();
  }
  void MarkDone() { done_ = true; }

 private:
  testing::TcpPair* pair_;
  std::thread thread_;
  bool done_ = false;
};

// The kernel's view of the TX keys (only with kTLS): proves which cipher it really runs.
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

enum class Ending { kCloseNotify, kFatalAlert };

struct BulkCase {
  const char* name;
  TlsParams server;
  TlsParams client;
  uint16_t version;
  uint16_t cipher;  // IANA id expected from the handshake
  Ending ending;
};

// Server side: BoringSSL handshake, TryInstall, then 1 MB each way and an alert. Client
// side: BoringSSL in userspace throughout, looking at the raw wire once.
void RunBulk(const BulkCase& c) {
  SCOPED_TRACE(c.name);
  auto server_ctx = testing::NewServerContext(c.server);
  auto client_ctx = testing::NewClientContext(c.client);
  ASSERT_TRUE(server_ctx && client_ctx) << testing::SslErrors();
  testing::TcpPair pair = testing::LoopbackPair();
  ASSERT_TRUE(pair.client.valid() && pair.server.valid());
  const std::vector<uint8_t> c2s = testing::RandomBytes(kBulkBytes);
  const std::vector<uint8_t> s2c = testing::RandomBytes(kBulkBytes);

  struct {
    std::string error;
    std::vector<uint8_t> got;
    uint8_t wire[64] = {};
    bool peeked = false;
    int final_read = 1;
    int final_error = 0;
    uint32_t final_reason = 0;
  } client;
  PeerThread peer(&pair, [&] {
    const int fd = pair.client.get();
    auto ssl = testing::Connect(client_ctx.get(), fd, &client.error);
    if (!ssl) return;
    Endpoint ep{fd, ssl.get(), false};
    if (!ep.WriteAll(c2s.data(), c2s.size(), &client.error)) return;
    client.peeked = testing::PeekWire(fd, client.wire, sizeof(client.wire));
    client.got.resize(s2c.size());
    if (!ep.ReadExact(client.got.data(), client.got.size(), &client.error)) return;
    uint8_t byte;
    client.final_read = SSL_read(ssl.get(), &byte, 1);
    client.final_error = SSL_get_error(ssl.get(), client.final_read);
    client.final_reason = ERR_GET_REASON(ERR_peek_error());
    ERR_clear_error();
  });

  std::string error;
  auto ssl = testing::Accept(server_ctx.get(), pair.server.get(), &error);
  ASSERT_TRUE(ssl) << error;
  const Result r = TryInstall(pair.server.get(), ssl.get());
  EXPECT_EQ(r.version, c.version);
  EXPECT_EQ(r.cipher, c.cipher) << SSL_CIPHER_get_name(SSL_get_current_cipher(ssl.get()));
  ExpectKernelOutcome(r);
  if (r.installed()) {
    EXPECT_EQ(KernelTxCipher(pair.server.get()), KernelCipherFor(c.cipher));
  }
  Endpoint ep{pair.server.get(), ssl.get(), r.installed()};

  std::vector<uint8_t> got(c2s.size());
  ASSERT_TRUE(ep.ReadExact(got.data(), got.size(), &error)) << error;
  EXPECT_TRUE(got == c2s) << "client->server bytes differ";
  ASSERT_TRUE(ep.WriteAll(s2c.data(), s2c.size(), &error)) << error;
  if (c.ending == Ending::kCloseNotify) {
    ASSERT_TRUE(ep.CloseNotify(&error)) << error;
  } else {
    ASSERT_TRUE(ep.FatalAlert(kAlertInternalError, &error)) << error;
  }
  peer.MarkDone();
  peer.Join();

  EXPECT_EQ(client.error, "");
  EXPECT_TRUE(client.got == s2c) << "server->client bytes differ";
  // The wire under the userspace client: a TLS application_data record header, and not
  // the plaintext (so the kernel really sealed it).
  ASSERT_TRUE(client.peeked);
  EXPECT_EQ(client.wire[0], 0x17);
  EXPECT_EQ(client.wire[1], 0x03);
  EXPECT_EQ(client.wire[2], 0x03);
  EXPECT_LE((client.wire[3] << 8) | client.wire[4], 16384 + 256);
  EXPECT_NE(std::memcmp(client.wire + 5, s2c.data(), sizeof(client.wire) - 5), 0);
  if (c.ending == Ending::kCloseNotify) {
    EXPECT_EQ(client.final_read, 0);
    EXPECT_EQ(client.final_error, SSL_ERROR_ZERO_RETURN) << "close_notify not seen";
  } else {
    EXPECT_LT(client.final_read, 0);
    EXPECT_EQ(client.final_error, SSL_ERROR_SSL);
    EXPECT_EQ(client.final_reason, static_cast<uint32_t>(SSL_R_TLSV1_ALERT_INTERNAL_ERROR))
        << "fatal internal_error alert not seen";
  }
}

TlsParams Tls13() { return {TLS1_3_VERSION, TLS1_3_VERSION, nullptr}; }
TlsParams Tls12(const char* ciphers) { return {TLS1_2_VERSION, TLS1_2_VERSION, ciphers}; }

TEST(KtlsLoopback, Detect) {
  utsname u{};
  ::uname(&u);
  const Support s = Detect();
  std::printf("kernel %s: kTLS %s\n", u.release, s == Support::kPresent ? "present" : "absent");
  // tools/ktls-vm-test sets this: in the VM, a silent fallback would make every case pass
  // without testing kTLS at all.
  if (std::getenv("ZPROXY_REQUIRE_KTLS") != nullptr) {
    ASSERT_EQ(s, Support::kPresent) << "ZPROXY_REQUIRE_KTLS is set but the kernel has no kTLS";
  }
  EXPECT_EQ(Detect(), s);  // stable, probed once
  for (size_t i = 0; i < kOutcomeCount; ++i) {
    EXPECT_STRNE(OutcomeName(static_cast<Outcome>(i)), "unknown");
  }
}

// BoringSSL always prefers AES-128-GCM in TLS 1.3 between two BoringSSL peers with AES
// hardware; AES-256-GCM and ChaCha20 in TLS 1.3 are covered with `openssl s_client` below.
TEST(KtlsLoopback, Tls13Aes128GcmCloseNotify) {
  RunBulk({"TLS1.3 AES-128-GCM", Tls13(), Tls13(), TLS1_3_VERSION, 0x1301, Ending::kCloseNotify});
}

TEST(KtlsLoopback, Tls13Aes128GcmFatalAlert) {
  RunBulk(
      {"TLS1.3 AES-128-GCM alert", Tls13(), Tls13(), TLS1_3_VERSION, 0x1301, Ending::kFatalAlert});
}

TEST(KtlsLoopback, Tls12EcdheEcdsaAes128Gcm) {
  RunBulk({"TLS1.2 ECDHE-ECDSA-AES128-GCM-SHA256", Tls12("ECDHE-ECDSA-AES128-GCM-SHA256"),
           Tls12("ECDHE-ECDSA-AES128-GCM-SHA256"), TLS1_2_VERSION, 0xC02B, Ending::kCloseNotify});
}

TEST(KtlsLoopback, Tls12EcdheEcdsaAes256Gcm) {
  RunBulk({"TLS1.2 ECDHE-ECDSA-AES256-GCM-SHA384", Tls12("ECDHE-ECDSA-AES256-GCM-SHA384"),
           Tls12("ECDHE-ECDSA-AES256-GCM-SHA384"), TLS1_2_VERSION, 0xC02C, Ending::kFatalAlert});
}

TEST(KtlsLoopback, Tls12EcdheEcdsaChacha20) {
  RunBulk({"TLS1.2 ECDHE-ECDSA-CHACHA20-POLY1305", Tls12("ECDHE-ECDSA-CHACHA20-POLY1305"),
           Tls12("ECDHE-ECDSA-CHACHA20-POLY1305"), TLS1_2_VERSION, 0xCCA9, Ending::kCloseNotify});
}

// A CBC suite has no kTLS mapping: userspace, with nothing touched on the socket.
TEST(KtlsLoopback, CbcSuiteStaysInUserspace) {
  auto server_ctx = testing::NewServerContext(Tls12("ECDHE-ECDSA-AES128-SHA"));
  auto client_ctx = testing::NewClientContext(Tls12("ECDHE-ECDSA-AES128-SHA"));
  ASSERT_TRUE(server_ctx && client_ctx);
  testing::TcpPair pair = testing::LoopbackPair();
  const std::vector<uint8_t> c2s = testing::RandomBytes(64 << 10);
  std::string client_error;
  std::vector<uint8_t> echoed(c2s.size());
  PeerThread peer(&pair, [&] {
    auto ssl = testing::Connect(client_ctx.get(), pair.client.get(), &client_error);
    if (!ssl) return;
    Endpoint ep{pair.client.get(), ssl.get(), false};
    if (ep.WriteAll(c2s.data(), c2s.size(), &client_error)) {
      ep.ReadExact(echoed.data(), echoed.size(), &client_error);
    }
  });
  std::string error;
  auto ssl = testing::Accept(server_ctx.get(), pair.server.get(), &error);
  ASSERT_TRUE(ssl) << error;
  const Result r = TryInstall(pair.server.get(), ssl.get());
  EXPECT_EQ(r.outcome, Outcome::kUnsupportedCipher);
  EXPECT_TRUE(r.userspace_usable());
  Endpoint ep{pair.server.get(), ssl.get(), false};
  std::vector<uint8_t> got(c2s.size());
  ASSERT_TRUE(ep.ReadExact(got.data(), got.size(), &error)) << error;
  ASSERT_TRUE(ep.WriteAll(got.data(), got.size(), &error)) << error;
  peer.MarkDone();
  peer.Join();
  EXPECT_EQ(client_error, "");
  EXPECT_TRUE(echoed == c2s);
}

// TLS 1.3 KeyUpdate from the client after install. The kernel here (6.1) cannot re-key,
// so the documented policy applies: RecvRecord reports kKeyUpdate, the server sends
// close_notify with its (still valid) TX keys and closes; the client sees a clean close.
// In userspace BoringSSL handles the KeyUpdate itself and the data keeps flowing.
TEST(KtlsLoopback, Tls13KeyUpdateClosesCleanlyUnderKtls) {
  auto server_ctx = testing::NewServerContext(Tls13());
  auto client_ctx = testing::NewClientContext(Tls13());
  ASSERT_TRUE(server_ctx && client_ctx);
  testing::TcpPair pair = testing::LoopbackPair();
  const std::vector<uint8_t> before = testing::RandomBytes(64 << 10);
  const std::vector<uint8_t> after = testing::RandomBytes(1000);
  struct {
    std::string error;
    int final_read = 1;
    int final_error = 0;
  } client;
  PeerThread peer(&pair, [&] {
    auto ssl = testing::Connect(client_ctx.get(), pair.client.get(), &client.error);
    if (!ssl) return;
    Endpoint ep{pair.client.get(), ssl.get(), false};
    if (!ep.WriteAll(before.data(), before.size(), &client.error)) return;
    if (!SSL_key_update(ssl.get(), SSL_KEY_UPDATE_REQUESTED)) {
      client.error = "SSL_key_update: " + testing::SslErrors();
      return;
    }
    if (!ep.WriteAll(after.data(), after.size(), &client.error)) return;
    uint8_t byte;
    client.final_read = SSL_read(ssl.get(), &byte, 1);
    client.final_error = SSL_get_error(ssl.get(), client.final_read);
  });
  std::string error;
  auto ssl = testing::Accept(server_ctx.get(), pair.server.get(), &error);
  ASSERT_TRUE(ssl) << error;
  const Result r = TryInstall(pair.server.get(), ssl.get());
  ExpectKernelOutcome(r);
  Endpoint ep{pair.server.get(), ssl.get(), r.installed()};
  std::vector<uint8_t> got(before.size());
  ASSERT_TRUE(ep.ReadExact(got.data(), got.size(), &error)) << error;
  EXPECT_TRUE(got == before);
  if (r.installed()) {
    // The data plane's path: plain recv says EIO (a non-data record is next) ...
    uint8_t small[16];
    errno = 0;
    EXPECT_EQ(::recv(pair.server.get(), small, sizeof(small), 0), -1);
    EXPECT_EQ(errno, EIO);
    // ... and RecvRecord names it.
    std::vector<uint8_t> record(kMaxRecordPayload);
    const RxResult rx = RecvRecord(pair.server.get(), record.data(), record.size(), 0);
    EXPECT_EQ(rx.kind, RxKind::kKeyUpdate);
    EXPECT_TRUE(rx.key_update_requested);
    ASSERT_EQ(SendCloseNotify(pair.server.get()), 0);
    // What the kernel does with the next record (under the client's new key): 6.1 tries the
    // old key and fails (EBADMSG); 6.14+ pauses RX (EKEYEXPIRED) until TLS_RX is re-set.
    errno = 0;
    const ssize_t n = ::recv(pair.server.get(), record.data(), record.size(), 0);
    const int next_errno = errno;
    std::printf("after KeyUpdate: next recv -> %zd errno %d (%s)\n", n, next_errno,
                strerror(next_errno));
    EXPECT_EQ(n, -1);
    EXPECT_TRUE(next_errno == EBADMSG || next_errno == EKEYEXPIRED) << strerror(next_errno);
  } else {
    std::vector<uint8_t> got_after(after.size());
    ASSERT_TRUE(ep.ReadExact(got_after.data(), got_after.size(), &error)) << error;
    EXPECT_TRUE(got_after == after);
    ASSERT_TRUE(ep.CloseNotify(&error)) << error;
  }
  peer.MarkDone();
  peer.Join();
  EXPECT_EQ(client.error, "");
  EXPECT_EQ(client.final_read, 0);
  EXPECT_EQ(client.final_error, SSL_ERROR_ZERO_RETURN) << "clean close not seen";
}

// kTLS on the CLIENT side (the data plane's upstream connections): the BoringSSL server
// sends its TLS 1.3 NewSessionTickets after our handshake returned, so they reach kTLS RX.
// They must be recognized and skipped, and the data after them must arrive intact.
TEST(KtlsLoopback, Tls13ClientSideSkipsNewSessionTickets) {
  auto server_ctx = testing::NewServerContext(Tls13());
  auto client_ctx = testing::NewClientContext(Tls13());
  ASSERT_TRUE(server_ctx && client_ctx);
  testing::TcpPair pair = testing::LoopbackPair();
  const std::vector<uint8_t> s2c = testing::RandomBytes(kBulkBytes);
  const std::vector<uint8_t> c2s = testing::RandomBytes(kBulkBytes);
  std::string server_error;
  std::vector<uint8_t> server_got(c2s.size());
  PeerThread peer(&pair, [&] {
    auto ssl = testing::Accept(server_ctx.get(), pair.server.get(), &server_error);
    if (!ssl) return;
    Endpoint ep{pair.server.get(), ssl.get(), false};
    if (ep.WriteAll(s2c.data(), s2c.size(), &server_error) &&
        ep.ReadExact(server_got.data(), server_got.size(), &server_error)) {
      ep.CloseNotify(&server_error);
    }
  });
  std::string error;
  auto ssl = testing::Connect(client_ctx.get(), pair.client.get(), &error);
  ASSERT_TRUE(ssl) << error;
  const Result r = TryInstall(pair.client.get(), ssl.get());
  ExpectKernelOutcome(r);
  Endpoint ep{pair.client.get(), ssl.get(), r.installed()};
  std::vector<uint8_t> got(s2c.size());
  ASSERT_TRUE(ep.ReadExact(got.data(), got.size(), &error)) << error;
  EXPECT_TRUE(got == s2c);
  if (r.installed()) {
    EXPECT_GE(ep.tickets_seen, 1) << "no NewSessionTicket reached kTLS RX";
    std::printf("client-side kTLS: %d NewSessionTicket record(s) skipped\n", ep.tickets_seen);
  }
  ASSERT_TRUE(ep.WriteAll(c2s.data(), c2s.size(), &error)) << error;
  // The server's close_notify.
  if (r.installed()) {
    std::vector<uint8_t> record(kMaxRecordPayload);
    const RxResult rx = RecvRecord(pair.client.get(), record.data(), record.size(), 0);
    EXPECT_EQ(rx.kind, RxKind::kCloseNotify);
  } else {
    uint8_t byte;
    const int n = SSL_read(ssl.get(), &byte, 1);
    EXPECT_EQ(SSL_get_error(ssl.get(), n), SSL_ERROR_ZERO_RETURN);
  }
  peer.MarkDone();
  peer.Join();
  EXPECT_EQ(server_error, "");
  EXPECT_TRUE(server_got == c2s);
}

// A server that feeds BoringSSL through memory BIOs, pumped by hand (as an io_uring
// worker feeds its session from receive buffers).
class MemBioServer {
 public:
  MemBioServer(SSL_CTX* ctx, int fd) : ssl_(SSL_new(ctx)), fd_(fd) {
    rbio_ = BIO_new(BIO_s_mem());
    wbio_ = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl_.get(), rbio_, wbio_);
    SSL_set_accept_state(ssl_.get());
  }
  SSL* ssl() { return ssl_.get(); }
  BIO* rbio() { return rbio_; }

  // Handshake; before the read that carries the client's Finished, waits for `ready` (the
  // client's first application record is then behind the Finished in the socket). That
  // last read goes to `*held` instead of the BIO when `held` is not null.
  bool Handshake(const std::atomic<bool>& ready, std::vector<uint8_t>* held) {
    for (int reads = 0;; ++reads) {
      const int rc = SSL_do_handshake(ssl_.get());
      if (!Flush()) return false;
      if (rc == 1) return true;
      if (SSL_get_error(ssl_.get(), rc) != SSL_ERROR_WANT_READ) return false;
      if (reads > 0) {
        for (int i = 0; i < 10000 && !ready; ++i) ::usleep(1000);
        if (held != nullptr) {
          Pull(10000, held);
          // Everything but the last 7 bytes (the tail of the client's first record).
          if (held->size() < 8) return false;
          BIO_write(rbio_, held->data(), static_cast<int>(held->size() - 7));
          held->erase(held->begin(), held->end() - 7);
          held = nullptr;
          continue;
        }
      }
      Pull(10000, nullptr);
    }
  }
  bool Flush() {
    const uint8_t* p;
    size_t n;
    if (!BIO_mem_contents(wbio_, &p, &n) || n == 0) return true;
    const bool ok = ::send(fd_, p, n, MSG_NOSIGNAL) == static_cast<ssize_t>(n);
    BIO_reset(wbio_);
    return ok;
  }
  // Everything the socket has now (waits up to wait_ms for the first byte) into the BIO or
  // into *out.
  void Pull(int wait_ms, std::vector<uint8_t>* out) {
    uint8_t buf[65536];
    pollfd pfd{fd_, POLLIN, 0};
    while (::poll(&pfd, 1, wait_ms) == 1) {
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n <= 0) break;
      if (out != nullptr) {
        out->insert(out->end(), buf, buf + n);
      } else {
        BIO_write(rbio_, buf, static_cast<int>(n));
      }
      wait_ms = 50;
    }
  }
  // Userspace path after TryInstall declined: exactly `len` bytes, then echo them.
  bool ReadUserspace(uint8_t* out, size_t len) {
    size_t have = 0;
    for (int rounds = 0; have < len && rounds < 10000; ++rounds) {
      const int n = SSL_read(ssl_.get(), out + have, static_cast<int>(len - have));
      if (n > 0) {
        have += static_cast<size_t>(n);
        continue;
      }
      if (SSL_get_error(ssl_.get(), n) != SSL_ERROR_WANT_READ) return false;
      Pull(10000, nullptr);
    }
    return have == len;
  }
  bool WriteUserspace(const uint8_t* data, size_t len) {
    return SSL_write(ssl_.get(), data, static_cast<int>(len)) == static_cast<int>(len) && Flush();
  }

 private:
  bssl::UniquePtr<SSL> ssl_;
  BIO* rbio_;
  BIO* wbio_;
  int fd_;
};

// Client side of the buffered-bytes tests: `early` right after the handshake, then `later`
// once the server decided (TryInstall), then reads `later` echoed back.
struct EarlyDataClient {
  std::vector<uint8_t> early, later, echoed;
  std::atomic<bool> early_sent{false};
  std::atomic<bool> server_decided{false};
  std::string error;

  void Run(SSL_CTX* ctx, int fd) {
    auto ssl = testing::Connect(ctx, fd, &error);
    if (!ssl) return;
    Endpoint ep{fd, ssl.get(), false};
    if (!ep.WriteAll(early.data(), early.size(), &error)) return;
    early_sent = true;
    for (int i = 0; i < 20000 && !server_decided; ++i) ::usleep(1000);
    echoed.resize(later.size());
    if (ep.WriteAll(later.data(), later.size(), &error)) {
      ep.ReadExact(echoed.data(), echoed.size(), &error);
    }
  }
};

// After TryInstall: `later` comes in and goes back out, through the kernel or BoringSSL.
void EchoLater(const Result& r, MemBioServer* server, int fd, EarlyDataClient* client) {
  std::vector<uint8_t> got(client->later.size());
  std::string error;
  if (r.installed()) {
    Endpoint ep{fd, server->ssl(), true};
    ASSERT_TRUE(ep.ReadExact(got.data(), got.size(), &error)) << error;
    ASSERT_TRUE(ep.WriteAll(got.data(), got.size(), &error)) << error;
  } else {
    ASSERT_TRUE(server->ReadUserspace(got.data(), got.size())) << testing::SslErrors();
    ASSERT_TRUE(server->WriteUserspace(got.data(), got.size()));
  }
  EXPECT_TRUE(got == client->later);
}

// The buffered-bytes rule, case 1: the memory BIO holds the client's first application
// record, read together with its Finished. TryInstall must refuse (kPendingData) and touch
// nothing; after SSL_read drained it, TryInstall goes ahead and the stream continues
// through the kernel, losing no byte.
TEST(KtlsLoopback, PendingBytesBlockInstallUntilDrained) {
  auto server_ctx = testing::NewServerContext(Tls13());
  auto client_ctx = testing::NewClientContext(Tls13());
  ASSERT_TRUE(server_ctx && client_ctx);
  testing::TcpPair pair = testing::LoopbackPair();
  EarlyDataClient client;
  client.early = testing::RandomBytes(3000);
  client.later = testing::RandomBytes(256 << 10);
  PeerThread peer(&pair, [&] { client.Run(client_ctx.get(), pair.client.get()); });

  const int fd = pair.server.get();
  MemBioServer server(server_ctx.get(), fd);
  ASSERT_TRUE(server.Handshake(client.early_sent, nullptr)) << testing::SslErrors();
  ASSERT_TRUE(client.early_sent);
  ASSERT_GT(BIO_pending(server.rbio()), 0) << "test setup: early record not read with Finished";

  const Result pending = TryInstall(fd, server.ssl());
  EXPECT_EQ(pending.outcome, Outcome::kPendingData);
  EXPECT_TRUE(pending.userspace_usable());

  // Drain exactly what BoringSSL holds, then install.
  std::vector<uint8_t> got(client.early.size());
  ASSERT_TRUE(server.ReadUserspace(got.data(), got.size())) << testing::SslErrors();
  ASSERT_EQ(BIO_pending(server.rbio()), 0);
  EXPECT_TRUE(got == client.early);
  const Result r = TryInstall(fd, server.ssl());
  ExpectKernelOutcome(r);
  client.server_decided = true;
  EchoLater(r, &server, fd, &client);
  peer.MarkDone();
  peer.Join();
  EXPECT_EQ(client.error, "");
  EXPECT_TRUE(client.echoed == client.later);
}

// Case 2: BoringSSL itself holds a PARTIAL record (its read buffer; the memory BIO is
// empty). Installing RX now would start the kernel in the middle of a record.
TEST(KtlsLoopback, PartialRecordInBoringSslBlocksInstall) {
  auto server_ctx = testing::NewServerContext(Tls13());
  auto client_ctx = testing::NewClientContext(Tls13());
  ASSERT_TRUE(server_ctx && client_ctx);
  testing::TcpPair pair = testing::LoopbackPair();
  EarlyDataClient client;
  client.early = testing::RandomBytes(1000);
  client.later = testing::RandomBytes(64 << 10);
  PeerThread peer(&pair, [&] { client.Run(client_ctx.get(), pair.client.get()); });

  const int fd = pair.server.get();
  MemBioServer server(server_ctx.get(), fd);
  std::vector<uint8_t> tail;
  ASSERT_TRUE(server.Handshake(client.early_sent, &tail)) << testing::SslErrors();
  ASSERT_EQ(tail.size(), 7u);
  uint8_t byte;
  const int n = SSL_read(server.ssl(), &byte, 1);  // takes the partial record off the BIO
  ASSERT_EQ(SSL_get_error(server.ssl(), n), SSL_ERROR_WANT_READ);
  ASSERT_EQ(BIO_pending(server.rbio()), 0);

  const Result pending = TryInstall(fd, server.ssl());
  EXPECT_EQ(pending.outcome, Outcome::kPendingData) << OutcomeName(pending.outcome);

  BIO_write(server.rbio(), tail.data(), static_cast<int>(tail.size()));
  std::vector<uint8_t> got(client.early.size());
  ASSERT_TRUE(server.ReadUserspace(got.data(), got.size())) << testing::SslErrors();
  EXPECT_TRUE(got == client.early);
  const Result r = TryInstall(fd, server.ssl());
  ExpectKernelOutcome(r);
  client.server_decided = true;
  EchoLater(r, &server, fd, &client);
  peer.MarkDone();
  peer.Join();
  EXPECT_EQ(client.error, "");
  EXPECT_TRUE(client.echoed == client.later);
}

// TLS 1.3 AES-256-GCM and ChaCha20-Poly1305 with OpenSSL as the peer (`openssl s_client`,
// its own process: BoringSSL and OpenSSL cannot share one). Two libraries agreeing on the
// kernel's records is also a check of the key derivation against an independent stack.
// s_client -quiet writes exactly the received plaintext to stdout and exits on our
// close_notify.
void RunWithOpenSslClient(const char* suite, uint16_t want_cipher) {
  SCOPED_TRACE(suite);
  auto server_ctx = testing::NewServerContext(Tls13());
  ASSERT_TRUE(server_ctx);
  uint16_t port = 0;
  UniqueFd listener = testing::LoopbackListener(&port);
  ASSERT_TRUE(listener.valid());
  testing::SetTimeouts(listener.get());
  const std::vector<uint8_t> c2s = testing::RandomBytes(kBulkBytes);
  const std::vector<uint8_t> s2c = testing::RandomBytes(kBulkBytes);

  int in_pipe[2], out_pipe[2];
  ASSERT_EQ(::pipe2(in_pipe, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(out_pipe, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_pipe[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  const std::string connect = "127.0.0.1:" + std::to_string(port);
  const char* argv[] = {"openssl",       "s_client", "-connect", connect.c_str(), "-tls1_3",
                        "-ciphersuites", suite,      "-quiet",   nullptr};
  pid_t pid = -1;
  const int spawn_rc =
      posix_spawnp(&pid, "openssl", &actions, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  UniqueFd to_client(in_pipe[1]), from_client(out_pipe[0]);
  ASSERT_EQ(spawn_rc, 0) << "cannot run `openssl` (PATH; in the VM pass it with "
                            "KTLS_VM_FILES=/usr/bin/openssl): "
                         << strerror(spawn_rc);

  std::vector<uint8_t> client_got;
  std::thread writer([&] {
    size_t off = 0;
    while (off < c2s.size()) {
      const ssize_t n = ::write(to_client.get(), c2s.data() + off, c2s.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  });
  std::thread reader([&] {
    uint8_t buf[65536];
    for (;;) {
      const ssize_t n = ::read(from_client.get(), buf, sizeof(buf));
      if (n <= 0) break;
      client_got.insert(client_got.end(), buf, buf + n);
    }
  });
  auto finish = [&] {
    // s_client exits after our close_notify; give it 20 s, then kill it.
    int status = 0;
    for (int i = 0; i < 2000 && ::waitpid(pid, &status, WNOHANG) == 0; ++i) ::usleep(10000);
    if (::waitpid(pid, &status, WNOHANG) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "openssl s_client did not exit after close_notify";
    }
    to_client.reset();
    writer.join();
    reader.join();
    return status;
  };

  UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.valid()) {
    finish();
    FAIL() << "openssl s_client did not connect: " << strerror(errno);
  }
  testing::SetTimeouts(conn.get());
  std::string error;
  auto ssl = testing::Accept(server_ctx.get(), conn.get(), &error);
  if (!ssl) {
    finish();
    FAIL() << error;
  }
  const Result r = TryInstall(conn.get(), ssl.get());
  EXPECT_EQ(r.cipher, want_cipher);
  ExpectKernelOutcome(r);
  if (r.installed()) {
    EXPECT_EQ(KernelTxCipher(conn.get()), KernelCipherFor(want_cipher));
  }
  Endpoint ep{conn.get(), ssl.get(), r.installed()};
  std::vector<uint8_t> got(c2s.size());
  const bool read_ok = ep.ReadExact(got.data(), got.size(), &error);
  EXPECT_TRUE(read_ok) << error;
  EXPECT_TRUE(got == c2s) << "client->server bytes differ";
  if (read_ok) {
    EXPECT_TRUE(ep.WriteAll(s2c.data(), s2c.size(), &error)) << error;
    EXPECT_TRUE(ep.CloseNotify(&error)) << error;
  }
  const int status = finish();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "s_client status " << status;
  EXPECT_EQ(client_got.size(), s2c.size());
  EXPECT_TRUE(client_got == s2c) << "server->client bytes differ";
}

TEST(KtlsLoopback, Tls13Aes256GcmWithOpenSslClient) {
  RunWithOpenSslClient("TLS_AES_256_GCM_SHA384", 0x1302);
}

TEST(KtlsLoopback, Tls13Chacha20WithOpenSslClient) {
  RunWithOpenSslClient("TLS_CHACHA20_POLY1305_SHA256", 0x1303);
}

}  // namespace
}  // namespace zproxy::ktls

namespace {
void OnAlarm(int) {
  static const char kMsg[] = "FAIL: ktls_loopback_test hung for 240 s\n";
  (void)!::write(2, kMsg, sizeof(kMsg) - 1);
  ::_exit(1);
}
}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGALRM, OnAlarm);  // a stuck kernel path must fail the run, not hang the VM
  ::alarm(240);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
