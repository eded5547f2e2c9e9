// The shared TLS context helper, built and run once against OpenSSL 3
// (:context_setup_openssl_test) and once against BoringSSL (:context_setup_boringssl_test):
// certificates and keys from files and inline PEM, the failures callers word into messages,
// CA roots, versions and ciphers, and the error queue as text.
#include "common/tls/context_setup.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <cctype>
#include <string>
#include <vector>

#include "common/tls/testing/self_signed.h"

namespace zproxy::tlsctx {
namespace {

using What = LoadFailure::What;

// A self-signed certificate for CN `name` and its key, as PEM text.
SelfSigned NewPair(const std::string& name) {
  SelfSignedOptions o;
  o.cn = name;
  return MakeSelfSigned(o);
}

struct Ctx {
  Ctx() : ctx(SSL_CTX_new(TLS_method())) {}
  ~Ctx() { SSL_CTX_free(ctx); }
  SSL_CTX* ctx;
};

const std::string kNone;

TEST(ContextSetup, LoadsCertificateAndKeyFromFiles) {
  const SelfSigned a = NewPair("a.test");
  const SelfSigned ca = NewPair("ca.test");
  const std::string cert =
      WriteTestFile("good.pem", a.cert_pem + ca.cert_pem);  // leaf, then its chain
  const std::string key = WriteTestFile("good.key", a.key_pem);
  Ctx c;
  LoadFailure f;
  EXPECT_TRUE(UseCertificateAndKey(c.ctx, {kNone, cert}, {kNone, key}, &f));
  EXPECT_EQ(f.what, What::kNone);
  EXPECT_NE(SSL_CTX_get0_certificate(c.ctx), nullptr);

  std::vector<X509Ptr> chain;
  KeyPtr k;
  EXPECT_TRUE(ReadCertificateAndKey({kNone, cert}, {kNone, key}, &chain, &k, &f));
  EXPECT_EQ(chain.size(), 2u);
  EXPECT_NE(k, nullptr);
  EXPECT_EQ(ERR_peek_error(), 0u);  // the end-of-PEM read left nothing queued
}

TEST(ContextSetup, InlinePemWinsOverThePath) {
  const SelfSigned a = NewPair("a.test");
  const std::string missing = "/nonexistent/a.pem";
  Ctx c;
  LoadFailure f;
  EXPECT_TRUE(UseCertificateAndKey(c.ctx, {a.cert_pem, missing}, {a.key_pem, missing}, &f));
  std::vector<X509Ptr> chain;
  EXPECT_TRUE(ReadCertificates({a.cert_pem, missing}, &chain, &f));
  EXPECT_EQ(chain.size(), 1u);
}

TEST(ContextSetup, MissingFileNamesThePath) {
  const SelfSigned a = NewPair("a.test");
  const std::string cert = WriteTestFile("present.pem", a.cert_pem);
  const std::string missing = "/nonexistent/zproxy-test.key";
  Ctx c;
  LoadFailure f;
  EXPECT_FALSE(UseCertificateAndKey(c.ctx, {kNone, missing}, {kNone, missing}, &f));
  EXPECT_EQ(f.what, What::kUnreadable);
  EXPECT_FALSE(f.in_key);
  EXPECT_EQ(f.text, "cannot read \"" + missing + "\": No such file or directory");

  LoadFailure kf;
  EXPECT_FALSE(UseCertificateAndKey(c.ctx, {kNone, cert}, {kNone, missing, " (a note)"}, &kf));
  EXPECT_EQ(kf.what, What::kUnreadable);
  EXPECT_TRUE(kf.in_key);
  // The note is for EACCES only.
  EXPECT_EQ(kf.text, "cannot read \"" + missing + "\": No such file or directory");

  std::string error;
  EXPECT_EQ(OpenPem({kNone, missing}, &error), nullptr);
  EXPECT_EQ(error, "cannot read \"" + missing + "\": No such file or directory");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ContextSetup, KeyNotMatchingTheCertificate) {
  const SelfSigned a = NewPair("a.test");
  const SelfSigned b = NewPair("b.test");
  std::vector<X509Ptr> chain;
  KeyPtr k;
  LoadFailure f;
  EXPECT_FALSE(ReadCertificateAndKey({a.cert_pem, kNone}, {b.key_pem, kNone}, &chain, &k, &f));
  EXPECT_EQ(f.what, What::kKeyMismatch);
  EXPECT_TRUE(f.in_key);

  Ctx c;
  LoadFailure u;
  EXPECT_FALSE(UseCertificateAndKey(c.ctx, {a.cert_pem, kNone}, {b.key_pem, kNone}, &u));
  EXPECT_EQ(u.what, What::kRejected);
  EXPECT_TRUE(u.in_key);
  EXPECT_NE(u.ssl_error, 0u);
  std::string reason = SslErrorReason(u.ssl_error);
  for (char& ch : reason) ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
  EXPECT_NE(reason.find("mismatch"), std::string::npos) << reason;
  EXPECT_NE(SslErrorText(u.ssl_error).find("error:"), std::string::npos)
      << SslErrorText(u.ssl_error);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ContextSetup, NoCertificateOrKeyInTheSource) {
  const std::string garbage = WriteTestFile("garbage.pem", "not PEM at all\n");
  std::vector<X509Ptr> chain;
  LoadFailure f;
  EXPECT_FALSE(ReadCertificates({kNone, garbage}, &chain, &f));
  EXPECT_EQ(f.what, What::kNoCertificate);

  const SelfSigned a = NewPair("a.test");
  KeyPtr k;
  LoadFailure kf;
  EXPECT_FALSE(ReadPrivateKey({a.cert_pem, kNone}, &k, &kf));  // a certificate, no key
  EXPECT_EQ(kf.what, What::kNoKey);
  EXPECT_TRUE(kf.in_key);
  EXPECT_NE(kf.ssl_error, 0u);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(ContextSetup, CaRoots) {
  const SelfSigned ca1 = NewPair("ca1.test");
  const SelfSigned ca2 = NewPair("ca2.test");
  const std::string bundle = WriteTestFile("bundle.pem", ca1.cert_pem + ca2.cert_pem);
  Ctx c;
  LoadFailure f;
  EXPECT_TRUE(LoadCaRoots(c.ctx, {kNone, bundle}, &f));

  const std::string bad = WriteTestFile("bad-ca.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n");
  Ctx c2;
  LoadFailure bf;
  EXPECT_FALSE(LoadCaRoots(c2.ctx, {kNone, bad}, &bf));
  EXPECT_EQ(bf.what, What::kNoCertificate);
  EXPECT_FALSE(bf.in_key);
  EXPECT_EQ(ERR_peek_error(), 0u);

  const std::string missing = "/nonexistent/ca.pem";
  LoadFailure mf;
  EXPECT_FALSE(LoadCaRoots(c2.ctx, {kNone, missing}, &mf));
  EXPECT_EQ(mf.what, What::kUnreadable);
  EXPECT_EQ(mf.text.rfind("cannot read \"/nonexistent/ca.pem\": ", 0), 0u) << mf.text;
}

TEST(ContextSetup, VersionsAndCiphers) {
  Ctx c;
  EXPECT_TRUE(ApplyVersionsAndCiphers(c.ctx, false));
  EXPECT_EQ(SSL_CTX_get_min_proto_version(c.ctx), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(c.ctx), TLS1_3_VERSION);
  EXPECT_TRUE(ApplyVersionsAndCiphers(c.ctx, true));
  EXPECT_EQ(SSL_CTX_get_min_proto_version(c.ctx), TLS1_3_VERSION);
  // Only the listed TLS 1.2 suites.
  STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(c.ctx);
  ASSERT_NE(ciphers, nullptr);
  const size_t n = static_cast<size_t>(sk_SSL_CIPHER_num(ciphers));
  for (size_t i = 0; i < n; i++) {
    const std::string name = SSL_CIPHER_get_name(sk_SSL_CIPHER_value(ciphers, i));
    if (name.rfind("TLS_", 0) == 0) continue;  // OpenSSL lists its TLS 1.3 suites here too
    EXPECT_NE(std::string(kTls12Ciphers).find(name), std::string::npos) << name;
  }
}

TEST(ContextSetup, ErrorQueueAsText) {
  EXPECT_EQ(TakeSslError(), 0u);
  EXPECT_EQ(SslErrorText(0), "unknown error");
  EXPECT_EQ(SslErrorText(0, "no PEM data"), "no PEM data");
  EXPECT_EQ(SslErrorReason(0, "none"), "none");

  // An unknown cipher queues the library's error; the helper renders it with the context.
  Ctx c;
  EXPECT_NE(SSL_CTX_set_cipher_list(c.ctx, "NO-SUCH-CIPHER"), 1);
  const std::string text = SslError("cipher list");
  EXPECT_EQ(text.rfind("cipher list: error:", 0), 0u) << text;
  EXPECT_EQ(ERR_peek_error(), 0u);  // taken and cleared

  EXPECT_NE(SSL_CTX_set_cipher_list(c.ctx, "NO-SUCH-CIPHER"), 1);
  const unsigned long e = TakeSslError();
  ASSERT_NE(e, 0u);
  const std::string reason = SslErrorReason(e);
  EXPECT_FALSE(reason.empty());
  EXPECT_EQ(reason.find("error:"), std::string::npos) << reason;  // the reason alone
  EXPECT_NE(SslErrorText(e).find(reason), std::string::npos) << SslErrorText(e);
}

}  // namespace
}  // namespace zproxy::tlsctx
