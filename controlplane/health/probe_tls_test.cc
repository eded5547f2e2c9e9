// HTTP checks over TLS against a real OpenSSL server on loopback, with certificates made
// here: the name check (SNI) and the IP check (no SNI), an untrusted and an expired
// certificate, verify off, and the Host header the check sends.
#include "controlplane/health/probe_tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>

#include <chrono>

#include "common/tls/testing/self_signed.h"
#include "controlplane/health/probe.h"
#include "controlplane/health/test_servers.h"
#include "gtest/gtest.h"

namespace zproxy::health {
namespace {

// A self-signed certificate for DNS:health.test and IP:127.0.0.1, valid from
// now + not_before_s to now + not_after_s.
using TestCert = tlsctx::SelfSigned;

TestCert MakeCert(long not_before_s = -3600, long not_after_s = 3600,
                  const char* names = "DNS:health.test,IP:127.0.0.1") {
  tlsctx::SelfSignedOptions o;
  o.cn = "health.test";
  o.san = names;
  o.not_before_s = not_before_s;
  o.not_after_s = not_after_s;
  return tlsctx::MakeSelfSigned(o);
}

// Accepts TLS with `cert`, answers each request head with 200 and closes.
class TlsResponder {
 public:
  explicit TlsResponder(const TestCert& cert) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    BIO* cb = BIO_new_mem_buf(cert.cert_pem.data(), static_cast<int>(cert.cert_pem.size()));
    X509* x = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    BIO* kb = BIO_new_mem_buf(cert.key_pem.data(), static_cast<int>(cert.key_pem.size()));
    EVP_PKEY* k = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
    SSL_CTX_use_certificate(ctx_, x);
    SSL_CTX_use_PrivateKey(ctx_, k);
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    fd_ = testing::BindLoopback(&port_);
    listen(fd_.get(), 16);
    thread_ = std::thread([this] { Run(); });
  }
  ~TlsResponder() {
    stop_ = true;
    thread_.join();
    SSL_CTX_free(ctx_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string last_request() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }

 private:
  void Run() {
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      UniqueFd c(accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c.valid()) continue;
      timeval tv{2, 0};
      setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c.get());
      if (SSL_accept(ssl) == 1) {
        std::string req;
        char buf[1024];
        while (req.find("\r\n\r\n") == std::string::npos) {
          int n = SSL_read(ssl, buf, sizeof(buf));
          if (n <= 0) break;
          req.append(buf, static_cast<size_t>(n));
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          last_ = req;
        }
        const std::string resp =
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";
        SSL_write(ssl, resp.data(), static_cast<int>(resp.size()));
      }
      SSL_free(ssl);
      ERR_clear_error();
    }
  }

  SSL_CTX* ctx_ = nullptr;
  UniqueFd fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::string last_;
  std::thread thread_;
};

// Runs one probe to its verdict with poll(2) (the checker uses epoll; the events match).
Probe& RunProbe(Probe& p, const std::string& address, const ProbeSpec& spec) {
  NetAddress addr;
  std::string err;
  EXPECT_TRUE(ParseNetAddress(address, &addr, &err)) << err;
  bool running = p.Start(addr, spec);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (running && std::chrono::steady_clock::now() < deadline) {
    pollfd q{p.fd(), static_cast<short>(p.wanted_events()), 0};
    if (poll(&q, 1, 100) <= 0) continue;
    if (p.OnEvents(static_cast<uint32_t>(q.revents))) running = false;
  }
  if (running) p.Fail("test timeout");
  return p;
}

ProbeSpec Spec(const ProbeTlsSettings& s, std::string host = "health.test") {
  ProbeSpec spec;
  spec.http_path = "/healthz";
  spec.host = std::move(host);
  std::string err;
  spec.tls = ProbeTlsContext::Create(s, &err);
  EXPECT_NE(spec.tls, nullptr) << err;
  return spec;
}

TEST(ProbeTlsTest, VerifiedByNameWithSniAndHost) {
  TestCert cert = MakeCert();
  TlsResponder server(cert);
  ProbeTlsSettings s;
  s.ca_pem = cert.cert_pem;
  s.sni = "health.test";
  Probe p;
  RunProbe(p, server.address(), Spec(s));
  EXPECT_TRUE(p.ok()) << p.reason();
  EXPECT_EQ(p.reason(), "HTTP 200");
  EXPECT_NE(server.last_request().find("GET /healthz HTTP/1.1\r\nHost: health.test\r\n"),
            std::string::npos)
      << server.last_request();
}

TEST(ProbeTlsTest, WithoutSniTheCertificateMustNameTheIp) {
  TestCert cert = MakeCert();
  TlsResponder server(cert);
  ProbeTlsSettings s;
  s.ca_pem = cert.cert_pem;
  Probe p;
  RunProbe(p, server.address(), Spec(s, server.address()));
  EXPECT_TRUE(p.ok()) << p.reason();
}

TEST(ProbeTlsTest, WithoutSniACertificateWithoutTheIpFails) {
  TestCert cert = MakeCert(-3600, 3600, "DNS:health.test");
  TlsResponder server(cert);
  ProbeTlsSettings s;
  s.ca_pem = cert.cert_pem;
  Probe p;
  RunProbe(p, server.address(), Spec(s, server.address()));
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.reason().rfind("TLS handshake failed: certificate name mismatch", 0), 0u)
      << p.reason();
}

TEST(ProbeTlsTest, WrongNameUntrustedAndExpiredFailWithTheReason) {
  TestCert cert = MakeCert();
  TlsResponder server(cert);
  ProbeTlsSettings wrong_name;
  wrong_name.ca_pem = cert.cert_pem;
  wrong_name.sni = "other.test";
  Probe p;
  RunProbe(p, server.address(), Spec(wrong_name));
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.reason().rfind("TLS handshake failed: certificate name mismatch", 0), 0u)
      << p.reason();

  ProbeTlsSettings other_ca;
  other_ca.ca_pem = MakeCert().cert_pem;
  other_ca.sni = "health.test";
  RunProbe(p, server.address(), Spec(other_ca));
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.reason().rfind("TLS handshake failed: certificate untrusted", 0), 0u) << p.reason();

  TestCert old = MakeCert(-7200, -3600);
  TlsResponder expired(old);
  ProbeTlsSettings s;
  s.ca_pem = old.cert_pem;
  s.sni = "health.test";
  RunProbe(p, expired.address(), Spec(s));
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.reason(), "TLS handshake failed: certificate expired");
}

TEST(ProbeTlsTest, VerifyOffAcceptsAnyCertificate) {
  TlsResponder server(MakeCert());
  ProbeTlsSettings s;
  s.verify = false;
  s.sni = "whatever.test";
  Probe p;
  RunProbe(p, server.address(), Spec(s));
  EXPECT_TRUE(p.ok()) << p.reason();
}

TEST(ProbeTlsTest, PlaintextServerFailsTheHandshake) {
  testing::HttpResponder plain(200);
  ProbeTlsSettings s;
  s.verify = false;
  Probe p;
  RunProbe(p, plain.address(), Spec(s));
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.reason().rfind("TLS handshake failed: ", 0), 0u) << p.reason();
}

TEST(ProbeTlsTest, SettingsThatCannotLoadFailEveryProbe) {
  ProbeTlsSettings s;
  s.ca_path = "/nonexistent/ca.pem";
  std::string err;
  EXPECT_EQ(ProbeTlsContext::Create(s, &err), nullptr);
  EXPECT_NE(err.find("ca: cannot read \"/nonexistent/ca.pem\""), std::string::npos) << err;
  ProbeSpec spec;
  spec.http_path = "/healthz";
  spec.tls_error = err;
  Probe p;
  RunProbe(p, testing::ClosedAddress(), spec);
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.reason(), "TLS settings: " + err);
}

// The exact texts of settings that cannot load (zproxyd logs them; every probe of the
// cluster reports them). The library's own text is pinned too.
TEST(ProbeTlsTest, SettingsErrorTexts) {
  const TestCert a = MakeCert();
  const TestCert b = MakeCert();
  auto error = [](const ProbeTlsSettings& s) {
    std::string err;
    EXPECT_EQ(ProbeTlsContext::Create(s, &err), nullptr);
    return err;
  };
  ProbeTlsSettings s;
  s.ca_path = "ca.pem";
  s.ca_pem = "garbage\n";
  EXPECT_EQ(error(s), "ca: no PEM certificate in \"ca.pem\"");
  s = ProbeTlsSettings();
  s.verify = false;
  s.cert_path = "/nonexistent/c.pem";
  s.key_pem = a.key_pem;
  EXPECT_EQ(error(s), "cert: cannot read \"/nonexistent/c.pem\": No such file or directory");
  s.cert_path = "c.pem";
  s.cert_pem = "garbage\n";
  EXPECT_EQ(error(s), "cert: no PEM certificate in \"c.pem\"");
  s.cert_pem = a.cert_pem;
  s.key_pem = "";
  s.key_path = "/nonexistent/k.pem";
  EXPECT_EQ(error(s), "key: cannot read \"/nonexistent/k.pem\": No such file or directory");
  s.key_pem = "garbage\n";
  EXPECT_EQ(error(s), "key: unsupported");
  s.key_pem = b.key_pem;
  EXPECT_EQ(error(s), "key: key values mismatch");
}

}  // namespace
}  // namespace zproxy::health
