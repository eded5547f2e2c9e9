// Real BoringSSL handshakes over loopback TCP, then kTLS: the same binary passes on a kernel
// without kTLS (Detect() says absent, TryInstall says no_kernel_support, bytes move through
// BoringSSL) and on one with it (run inside ../shared/ktls-vm: TryInstall must install,
// the server moves plaintext with send/recv and the userspace peer must still decrypt,
// verify and see alerts).
//
//   bazel test //dataplane/ktls:ktls_loopback_test                 (host: fallback)
//   tools/ktls-vm-test                                              (VM: kTLS for real)
//
// One binary (one VM boot) with several files: this one (bulk transfers per cipher, alerts,
// KeyUpdate, tickets, main), ktls_buffered_bytes_test.cc, ktls_openssl_peer_test.cc,
// ktls_uring_test.cc and ktls_dataplane_session_test.cc.
#include <gtest/gtest.h>
#include <linux/tls.h>
#include <openssl/err.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/ktls/ktls.h"
#include "dataplane/ktls/records.h"
#include "dataplane/ktls/testing/test_support.h"
#include "dataplane/ktls/testing/tls_peers.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace zproxy::ktls {
namespace {

using testing::Endpoint;
using testing::ExpectKernelOutcome;
using testing::KernelCipherFor;
using testing::KernelTxCipher;
using testing::PeerThread;
using testing::Tls12;
using testing::Tls13;
using testing::TlsParams;

constexpr size_t kBulkBytes = 1 << 20;

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
