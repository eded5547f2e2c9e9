// The buffered-bytes rule of TryInstall (ktls.h) with a server that feeds BoringSSL through
// memory BIOs, as an io_uring worker does: bytes BoringSSL already took off the socket must
// block the install until they are consumed, and no byte may be lost either way.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "dataplane/ktls/ktls.h"
#include "dataplane/ktls/testing/test_support.h"
#include "dataplane/ktls/testing/tls_peers.h"

namespace zproxy::ktls {
namespace {

using testing::Endpoint;
using testing::ExpectKernelOutcome;
using testing::PeerThread;
using testing::Tls13;

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
TEST(KtlsBufferedBytes, PendingBytesBlockInstallUntilDrained) {
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
TEST(KtlsBufferedBytes, PartialRecordInBoringSslBlocksInstall) {
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

}  // namespace
}  // namespace zproxy::ktls
