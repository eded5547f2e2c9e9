// Self-signed certificates made on the fly for tests, as PEM text, from the same source for
// OpenSSL 3 and BoringSSL tests (//common/tls/testing:self_signed_openssl / _boringssl; a
// test depends on the one of its library, as with //common/tls).
#pragma once

#include <string>

namespace zproxy::tlsctx {

struct SelfSignedOptions {
  std::string cn = "test";
  std::string san;            // e.g. "DNS:a.test,IP:127.0.0.1"; empty: no subjectAltName
  bool rsa = false;           // RSA 2048, else ECDSA P-256
  long not_before_s = -3600;  // validity, relative to now
  long not_after_s = 3600;
};

struct SelfSigned {
  std::string cert_pem, key_pem;
};

// A new key and a certificate for it signed by itself (each with its own serial number).
SelfSigned MakeSelfSigned(const SelfSignedOptions& options);

// Writes `text` to TEST_TMPDIR (else /tmp)/`name`; returns the path.
std::string WriteTestFile(const std::string& name, const std::string& text);

}  // namespace zproxy::tlsctx
