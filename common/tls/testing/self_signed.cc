// Compiled against OpenSSL 3 and against BoringSSL (see the header); only the key
// generation differs.
#include "common/tls/testing/self_signed.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#ifdef OPENSSL_IS_BORINGSSL
#include <openssl/bn.h>
#include <openssl/ec_key.h>
#include <openssl/nid.h>
#include <openssl/rsa.h>
#else
#include <openssl/ec.h>
#include <openssl/rsa.h>
#endif

#include <atomic>
#include <cstdlib>
#include <fstream>

namespace zproxy::tlsctx {
namespace {

EVP_PKEY* NewKey(bool rsa) {
#ifdef OPENSSL_IS_BORINGSSL
  EVP_PKEY* pkey = EVP_PKEY_new();
  if (rsa) {
    RSA* r = RSA_new();
    BIGNUM* e = BN_new();
    BN_set_word(e, RSA_F4);
    RSA_generate_key_ex(r, 2048, e, nullptr);
    BN_free(e);
    EVP_PKEY_assign_RSA(pkey, r);
  } else {
    EC_KEY* ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EC_KEY_generate_key(ec);
    EVP_PKEY_assign_EC_KEY(pkey, ec);
  }
  return pkey;
#else
  return rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
#endif
}

template <typename Write>
std::string Pem(Write write) {
  BIO* b = BIO_new(BIO_s_mem());
  write(b);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string s(data, static_cast<size_t>(n));
  BIO_free(b);
  return s;
}

}  // namespace

SelfSigned MakeSelfSigned(const SelfSignedOptions& o) {
  static std::atomic<long> serial{1};
  EVP_PKEY* key = NewKey(o.rsa);
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), o.not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(x), o.not_after_s);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(o.cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  if (!o.san.empty()) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    X509_EXTENSION* san = X509V3_EXT_nconf_nid(nullptr, &ctx, NID_subject_alt_name, o.san.c_str());
    X509_add_ext(x, san, -1);
    X509_EXTENSION_free(san);
  }
  X509_sign(x, key, EVP_sha256());
  SelfSigned out;
  out.cert_pem = Pem([&](BIO* b) { PEM_write_bio_X509(b, x); });
  out.key_pem =
      Pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr); });
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

std::string WriteTestFile(const std::string& name, const std::string& text) {
  const char* dir = getenv("TEST_TMPDIR");
  const std::string path = std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace zproxy::tlsctx
