// The data plane's own server-side TLS (dataplane/tls: ServerContext from a listener's
// config, Session over a custom BIO, as the workers run it) handing over to kTLS: the keys
// must still be exportable after the session shed its handshake state, and the stream must
// continue through the kernel (in the VM) or through the Session (host fallback).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/ktls/ktls.h"
#include "dataplane/ktls/records.h"
#include "dataplane/ktls/testing/tls_peers.h"
#include "dataplane/tls/server_context.h"
#include "dataplane/tls/session.h"

namespace zproxy::ktls {
namespace {

using testing::Endpoint;

// A throwaway ECDSA P-256 certificate and key as PEM files (ServerContext loads files).
bool WritePemPair(const std::string& dir, std::string* cert_path, std::string* key_path) {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!ec || !EC_KEY_generate_key(ec.get()) || !EVP_PKEY_assign_EC_KEY(key.get(), ec.release())) {
    return false;
  }
  bssl::UniquePtr<X509> cert(X509_new());
  bssl::UniquePtr<ASN1_TIME> nb(ASN1_TIME_set(nullptr, time(nullptr) - 3600));
  bssl::UniquePtr<ASN1_TIME> na(ASN1_TIME_set(nullptr, time(nullptr) + 86400));
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!X509_set_version(cert.get(), X509_VERSION_3) ||
      !ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 2) ||
      !X509_set1_notBefore(cert.get(), nb.get()) || !X509_set1_notAfter(cert.get(), na.get()) ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                  reinterpret_cast<const uint8_t*>("ktls.test"), -1, -1, 0) ||
      !X509_set_issuer_name(cert.get(), name) || !X509_set_pubkey(cert.get(), key.get()) ||
      !X509_sign(cert.get(), key.get(), EVP_sha256())) {
    return false;
  }
  *cert_path = dir + "/cert.pem";
  *key_path = dir + "/key.pem";
  bssl::UniquePtr<BIO> c(BIO_new_file(cert_path->c_str(), "w"));
  bssl::UniquePtr<BIO> k(BIO_new_file(key_path->c_str(), "w"));
  return c && k && PEM_write_bio_X509(c.get(), cert.get()) &&
         PEM_write_bio_PrivateKey(k.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
}

// Ciphertext from the Session goes straight to the socket.
class SocketSink : public tls::WireSink {
 public:
  explicit SocketSink(int fd) : fd_(fd) {}
  bool Append(const char* data, size_t len) override {
    while (len > 0) {
      const ssize_t n = ::send(fd_, data, len, MSG_NOSIGNAL);
      if (n <= 0) return false;
      data += n;
      len -= static_cast<size_t>(n);
    }
    return true;
  }

 private:
  int fd_;
};

// Reads exactly one TLS record (header + body) so the Session never holds bytes past the
// record it needs: the socket stays quiet for TryInstall right after the handshake.
bool ReadOneRecord(int fd, std::vector<char>* record) {
  uint8_t header[5];
  if (::recv(fd, header, sizeof(header), MSG_PEEK | MSG_WAITALL) != 5) return false;
  const size_t len = 5 + ((size_t{header[3]} << 8) | header[4]);
  record->resize(len);
  return ::recv(fd, record->data(), len, MSG_WAITALL) == static_cast<ssize_t>(len);
}

void RunDataPlaneSession(const testing::TlsParams& client_params, uint16_t want_cipher) {
  char dir_template[] = "/tmp/ktls-session.XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  std::string cert_path, key_path, error;
  ASSERT_TRUE(WritePemPair(dir, &cert_path, &key_path));
  zproxy::v1::ListenerTls config;
  auto* c = config.add_certificates();
  c->set_cert(cert_path);
  c->set_key(key_path);
  config.set_min_version("TLS1_2");
  config.add_alpn("http/1.1");
  auto context = tls::ServerContext::Create(config, nullptr, &error);
  ::unlink(cert_path.c_str());
  ::unlink(key_path.c_str());
  ::rmdir(dir.c_str());
  ASSERT_TRUE(context) << error;

  auto client_ctx = testing::NewClientContext(client_params);
  ASSERT_TRUE(client_ctx);
  testing::TcpPair pair = testing::LoopbackPair();
  const std::vector<uint8_t> c2s = testing::RandomBytes(1 << 20);
  const std::vector<uint8_t> s2c = testing::RandomBytes(1 << 20);
  struct {
    std::string error;
    std::vector<uint8_t> got;
    int final_error = 0;
    uint16_t cipher = 0;
  } client;
  std::thread peer([&] {
    auto ssl = testing::Connect(client_ctx.get(), pair.client.get(), &client.error);
    if (!ssl) return;
    client.cipher = SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(ssl.get()));
    Endpoint ep{pair.client.get(), ssl.get(), false};
    if (!ep.WriteAll(c2s.data(), c2s.size(), &client.error)) return;
    client.got.resize(s2c.size());
    if (!ep.ReadExact(client.got.data(), client.got.size(), &client.error)) return;
    uint8_t byte;
    client.final_error = SSL_get_error(ssl.get(), SSL_read(ssl.get(), &byte, 1));
  });
  struct JoinOnExit {
    std::thread* t;
    int fd;
    ~JoinOnExit() {
      if (!t->joinable()) return;
      ::shutdown(fd, SHUT_RDWR);
      t->join();
    }
  } join{&peer, pair.server.get()};

  const int fd = pair.server.get();
  SocketSink sink(fd);
  tls::Session session;
  ASSERT_TRUE(session.Start(*context, &sink));
  std::vector<char> record;
  for (int i = 0; i < 100; ++i) {
    const tls::Session::Result r = session.Handshake();
    if (r == tls::Session::Result::kOk && session.established()) break;
    ASSERT_EQ(r, tls::Session::Result::kWantInput) << "handshake failed";
    ASSERT_TRUE(ReadOneRecord(fd, &record));
    session.SetInput(record.data(), record.size());
  }
  ASSERT_TRUE(session.established());
  ASSERT_EQ(session.input_left(), 0u);
  ASSERT_FALSE(session.has_buffered_input());

  const Result r = TryInstall(fd, session.ssl());
  EXPECT_EQ(r.cipher, want_cipher) << session.cipher();
  if (Detect() == Support::kPresent) {
    ASSERT_EQ(r.outcome, Outcome::kInstalled) << OutcomeName(r.outcome) << " errno " << r.error;
  } else {
    ASSERT_EQ(r.outcome, Outcome::kNoKernelSupport) << OutcomeName(r.outcome);
  }

  std::vector<uint8_t> got;
  got.reserve(c2s.size());
  if (r.installed()) {
    // What the worker does next: free BoringSSL's state, plaintext over the socket.
    session.Reset();
    Endpoint ep{fd, nullptr, true};
    got.resize(c2s.size());
    ASSERT_TRUE(ep.ReadExact(got.data(), got.size(), &error)) << error;
    ASSERT_TRUE(ep.WriteAll(s2c.data(), s2c.size(), &error)) << error;
    ASSERT_EQ(SendCloseNotify(fd), 0);
  } else {
    char buf[16384];
    while (got.size() < c2s.size()) {
      size_t n = 0;
      const tls::Session::Result rr = session.Read(buf, sizeof(buf), &n);
      if (rr == tls::Session::Result::kOk) {
        got.insert(got.end(), buf, buf + n);
        continue;
      }
      ASSERT_EQ(rr, tls::Session::Result::kWantInput);
      ASSERT_TRUE(ReadOneRecord(fd, &record));
      session.SetInput(record.data(), record.size());
    }
    ASSERT_EQ(session.Write(reinterpret_cast<const char*>(s2c.data()), s2c.size()),
              tls::Session::Result::kOk);
    session.CloseNotify();
  }
  EXPECT_TRUE(got == c2s) << "client->server bytes differ";
  peer.join();
  EXPECT_EQ(client.error, "");
  EXPECT_EQ(client.cipher, want_cipher);
  EXPECT_TRUE(client.got == s2c) << "server->client bytes differ";
  EXPECT_EQ(client.final_error, SSL_ERROR_ZERO_RETURN) << "close_notify not seen";
}

TEST(KtlsDataPlaneSession, Tls13HandsOverToKtls) {
  RunDataPlaneSession({TLS1_3_VERSION, TLS1_3_VERSION, nullptr}, 0x1301);
}

TEST(KtlsDataPlaneSession, Tls12HandsOverToKtls) {
  RunDataPlaneSession({TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256"}, 0xC02B);
}

}  // namespace
}  // namespace zproxy::ktls
