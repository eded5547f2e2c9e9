// TLS 1.3 AES-256-GCM and ChaCha20-Poly1305 through kTLS with `openssl s_client` as the peer:
// two BoringSSL peers always agree on AES-128-GCM in TLS 1.3 (BoringSSL has no TLS 1.3
// cipher preference knob), and OpenSSL reading the kernel's records also checks the key
// derivation against an independent TLS stack.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/ktls/ktls.h"
#include "dataplane/ktls/testing/test_support.h"
#include "dataplane/ktls/testing/tls_peers.h"

extern char** environ;

namespace zproxy::ktls {
namespace {

using testing::Endpoint;
using testing::ExpectKernelOutcome;
using testing::KernelCipherFor;
using testing::KernelTxCipher;
using testing::Tls13;

constexpr size_t kBulkBytes = 1 << 20;

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

TEST(KtlsOpenSslPeer, Tls13Aes256Gcm) { RunWithOpenSslClient("TLS_AES_256_GCM_SHA384", 0x1302); }

TEST(KtlsOpenSslPeer, Tls13Chacha20) {
  RunWithOpenSslClient("TLS_CHACHA20_POLY1305_SHA256", 0x1303);
}

}  // namespace
}  // namespace zproxy::ktls
