// The TLS context setup zproxyd's health probe (OpenSSL 3) and the data plane (BoringSSL)
// share: PEM sources (inline contents or a file), certificate chains and keys, CA roots, the
// project's versions and TLS 1.2 cipher list, and the library's error queue as text.
//
// One source, two libraries: //common/tls:context_setup_openssl and :context_setup_boringssl
// compile this file against each. The two export the same symbol names and crash when loaded
// into one process (notes/build.md), so the code is shared, never the object files: a target
// depends on exactly one of the two. Only calls both libraries have are used here; where
// they differ (the strict cipher list) the .cc says so under OPENSSL_IS_BORINGSSL.
//
// Messages: the loaders report what failed (LoadFailure) and each caller words it with its
// own field names, so the texts users and tests see stay those of each caller.
#pragma once

#include <memory>
#include <string>
#include <vector>

// The same struct tags in OpenSSL 3 and BoringSSL; this header includes neither.
struct bio_st;
struct evp_pkey_st;
struct ssl_ctx_st;
struct x509_st;

namespace zproxy::tlsctx {

// TLS 1.2 suites: ECDHE with AEADs only (forward secrecy, and what kTLS can take over).
// TLS 1.3 suites are the library's (all AEADs; BoringSSL does not make them configurable).
extern const char kTls12Ciphers[];

struct BioFree {
  void operator()(bio_st* b) const;
};
struct X509Free {
  void operator()(x509_st* x) const;
};
struct KeyFree {
  void operator()(evp_pkey_st* k) const;
};
using Bio = std::unique_ptr<bio_st, BioFree>;
using X509Ptr = std::unique_ptr<x509_st, X509Free>;
using KeyPtr = std::unique_ptr<evp_pkey_st, KeyFree>;

// ---- The error queue as text

// Takes the oldest error off this thread's queue and clears the rest; 0 when it is empty.
unsigned long TakeSslError();
// The library's full text for a packed error ("error:0A00018F:SSL routines::ee key too
// small"); `if_none` for 0.
std::string SslErrorText(unsigned long code, const char* if_none = "unknown error");
// Only its reason ("ee key too small"); the full text where the library has no reason.
std::string SslErrorReason(unsigned long code, const char* if_none = "unknown error");
// "context: " and the full text of the oldest queued error; clears the queue.
std::string SslError(const std::string& context);

// ---- PEM sources

// Inline PEM contents (zproxyd puts the files' contents in the data plane's config) or,
// when empty, the file `path`. Both must outlive the calls that use the source.
struct PemSource {
  const std::string& pem;
  const std::string& path;
  // Appended to the "cannot read" text when the file exists but may not be read (EACCES).
  const char* access_note = "";
};

// A BIO over the source. On failure null and *error is "cannot read \"PATH\": REASON".
Bio OpenPem(const PemSource& source, std::string* error);

// What went wrong loading a certificate, a key or CA roots.
struct LoadFailure {
  enum class What {
    kNone,
    kUnreadable,     // the file cannot be opened; `text` is OpenPem's message
    kNoCertificate,  // the source holds no PEM certificate (or none the store took)
    kNoKey,          // the source holds no PEM private key; `ssl_error` says why
    kKeyMismatch,    // the key does not belong to the leaf certificate
    kRejected,       // the library refused the certificate or the key; `ssl_error` says why
  };
  What what = What::kNone;
  bool in_key = false;  // the key's source failed (else the certificate's or the CA's)
  std::string text;
  unsigned long ssl_error = 0;
};

// The certificates of the source, in order, up to the first that does not parse (the end
// of the PEM text ends every read with "no start line"; the queue is cleared).
// kUnreadable or kNoCertificate.
bool ReadCertificates(const PemSource& source, std::vector<X509Ptr>* out, LoadFailure* failure);

// The private key of the source. kUnreadable or kNoKey, with in_key set.
bool ReadPrivateKey(const PemSource& source, KeyPtr* out, LoadFailure* failure);

// A chain (leaf first) and its key, parsed and checked to belong together, for a caller that
// installs them itself (the data plane's listeners hand them to each connection).
// Any failure of ReadCertificates / ReadPrivateKey, or kKeyMismatch (in_key set).
bool ReadCertificateAndKey(const PemSource& cert, const PemSource& key, std::vector<X509Ptr>* chain,
                           KeyPtr* out_key, LoadFailure* failure);

// The CA bundle into the context's trust store. kUnreadable or kNoCertificate.
bool LoadCaRoots(ssl_ctx_st* ctx, const PemSource& ca, LoadFailure* failure);

// A chain (leaf first) and its key as the context's own certificate (a client certificate).
// ReadCertificates' failures, kRejected for a certificate the context refuses, then
// (in_key set) ReadPrivateKey's failures or kRejected for a key that is refused or does not
// match the certificate.
bool UseCertificateAndKey(ssl_ctx_st* ctx, const PemSource& cert, const PemSource& key,
                          LoadFailure* failure);

// ---- Versions and ciphers

// TLS 1.2 (or 1.3 when `min_tls13`) up to TLS 1.3, and kTls12Ciphers (strictly on
// BoringSSL: a suite it does not know is an error). False when the library refuses the list;
// its error is left on the queue for the caller to word ("cipher list: ...").
bool ApplyVersionsAndCiphers(ssl_ctx_st* ctx, bool min_tls13);

}  // namespace zproxy::tlsctx
