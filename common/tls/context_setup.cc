// Compiled twice: against OpenSSL 3 (zproxyd) and against BoringSSL (the data plane); see
// the header. Keep to the calls both libraries declare.
#include "common/tls/context_setup.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>

namespace zproxy::tlsctx {

const char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

void BioFree::operator()(bio_st* b) const { BIO_free(b); }
void X509Free::operator()(x509_st* x) const { X509_free(x); }
void KeyFree::operator()(evp_pkey_st* k) const { EVP_PKEY_free(k); }

unsigned long TakeSslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  return e;
}

std::string SslErrorText(unsigned long code, const char* if_none) {
  if (code == 0) return if_none;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

std::string SslErrorReason(unsigned long code, const char* if_none) {
  if (code == 0) return if_none;
  const char* reason = ERR_reason_error_string(code);
  if (reason != nullptr) return reason;
  return SslErrorText(code, if_none);
}

std::string SslError(const std::string& context) {
  return context + ": " + SslErrorText(TakeSslError());
}

Bio OpenPem(const PemSource& source, std::string* error) {
  if (!source.pem.empty()) {
    return Bio(BIO_new_mem_buf(source.pem.data(), static_cast<int>(source.pem.size())));
  }
  Bio b(BIO_new_file(source.path.c_str(), "r"));
  if (!b) {
    const int err = errno;
    ERR_clear_error();
    *error = "cannot read \"" + source.path + "\": " + std::strerror(err);
    if (err == EACCES) *error += source.access_note;
  }
  return b;
}

namespace {

bool Unreadable(const PemSource& source, bool in_key, Bio* bio, LoadFailure* failure) {
  std::string why;
  *bio = OpenPem(source, &why);
  if (*bio) return false;
  failure->what = LoadFailure::What::kUnreadable;
  failure->in_key = in_key;
  failure->text = std::move(why);
  return true;
}

void Fail(LoadFailure::What what, bool in_key, unsigned long ssl_error, LoadFailure* failure) {
  failure->what = what;
  failure->in_key = in_key;
  failure->ssl_error = ssl_error;
}

}  // namespace

bool ReadCertificates(const PemSource& source, std::vector<X509Ptr>* out, LoadFailure* failure) {
  Bio b;
  if (Unreadable(source, false, &b, failure)) return false;
  while (X509* x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) out->emplace_back(x);
  ERR_clear_error();  // the loop ends on "no start line"
  if (out->empty()) {
    Fail(LoadFailure::What::kNoCertificate, false, 0, failure);
    return false;
  }
  return true;
}

bool ReadPrivateKey(const PemSource& source, KeyPtr* out, LoadFailure* failure) {
  Bio b;
  if (Unreadable(source, true, &b, failure)) return false;
  out->reset(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!*out) {
    Fail(LoadFailure::What::kNoKey, true, TakeSslError(), failure);
    return false;
  }
  return true;
}

bool ReadCertificateAndKey(const PemSource& cert, const PemSource& key, std::vector<X509Ptr>* chain,
                           KeyPtr* out_key, LoadFailure* failure) {
  if (!ReadCertificates(cert, chain, failure)) return false;
  if (!ReadPrivateKey(key, out_key, failure)) return false;
  if (X509_check_private_key(chain->front().get(), out_key->get()) != 1) {
    ERR_clear_error();
    Fail(LoadFailure::What::kKeyMismatch, true, 0, failure);
    return false;
  }
  return true;
}

bool LoadCaRoots(SSL_CTX* ctx, const PemSource& ca, LoadFailure* failure) {
  std::vector<X509Ptr> certs;
  if (!ReadCertificates(ca, &certs, failure)) return false;
  int added = 0;
  for (const X509Ptr& x : certs) {
    if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x.get()) == 1) added++;
  }
  ERR_clear_error();
  if (added == 0) {
    Fail(LoadFailure::What::kNoCertificate, false, 0, failure);
    return false;
  }
  return true;
}

bool UseCertificateAndKey(SSL_CTX* ctx, const PemSource& cert, const PemSource& key,
                          LoadFailure* failure) {
  std::vector<X509Ptr> chain;
  if (!ReadCertificates(cert, &chain, failure)) return false;
  for (size_t i = 0; i < chain.size(); i++) {
    // Leaf first, then its chain (add1 takes its own reference).
    X509* x = chain[i].get();
    const int ok = i == 0 ? SSL_CTX_use_certificate(ctx, x) : SSL_CTX_add1_chain_cert(ctx, x);
    if (ok != 1) {
      Fail(LoadFailure::What::kRejected, false, TakeSslError(), failure);
      return false;
    }
  }
  KeyPtr k;
  if (!ReadPrivateKey(key, &k, failure)) return false;
  if (SSL_CTX_use_PrivateKey(ctx, k.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    Fail(LoadFailure::What::kRejected, true, TakeSslError(), failure);
    return false;
  }
  return true;
}

bool ApplyVersionsAndCiphers(SSL_CTX* ctx, bool min_tls13) {
  SSL_CTX_set_min_proto_version(ctx, min_tls13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
#ifdef OPENSSL_IS_BORINGSSL
  // BoringSSL only: fails on a suite it does not know instead of skipping it.
  return SSL_CTX_set_strict_cipher_list(ctx, kTls12Ciphers) == 1;
#else
  return SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) == 1;
#endif
}

}  // namespace zproxy::tlsctx
