// TryInstall(): move a finished handshake's record keys into the kernel.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <sys/socket.h>

#include "dataplane/ktls/key_material.h"
#include "dataplane/ktls/ktls.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace zproxy::ktls {
namespace {

// Bytes BoringSSL or its BIOs hold that the kernel would never see (input) or that would
// arrive after kernel-sealed records (output). Socket BIOs report 0 for both.
bool HasBufferedBytes(SSL* ssl) {
  if (SSL_has_pending(ssl)) return true;
  BIO* rbio = SSL_get_rbio(ssl);
  if (rbio != nullptr && BIO_pending(rbio) > 0) return true;
  BIO* wbio = SSL_get_wbio(ssl);
  if (wbio != nullptr && wbio != rbio && BIO_pending(wbio) > 0) return true;
  return wbio != nullptr && BIO_wpending(wbio) > 0;
}

struct WipeOnExit {
  KernelCryptoInfo* a;
  KernelCryptoInfo* b;
  ~WipeOnExit() {
    Wipe(a);
    Wipe(b);
  }
};

}  // namespace

Result TryInstall(int fd, SSL* ssl) {
  Result result;
  result.version = static_cast<uint16_t>(SSL_version(ssl));
  if (const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl)) {
    result.cipher = SSL_CIPHER_get_protocol_id(cipher);
  }

  KernelCryptoInfo tx, rx;
  WipeOnExit wipe{&tx, &rx};
  switch (DeriveBothDirections(ssl, &tx, &rx)) {
    case DeriveStatus::kOk:
      break;
    case DeriveStatus::kUnsupportedVersion:
      result.outcome = Outcome::kUnsupportedVersion;
      return result;
    case DeriveStatus::kUnsupportedCipher:
      result.outcome = Outcome::kUnsupportedCipher;
      return result;
  }
  // After the derivation: BoringSSL's key export does not read or write the transport.
  if (HasBufferedBytes(ssl)) {
    result.outcome = Outcome::kPendingData;
    return result;
  }

  // The ULP alone changes nothing on the wire: until TLS_TX/TLS_RX are set, send and recv
  // pass through, so a refusal up to the first key leaves userspace TLS working.
  if (::setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) < 0) {
    result.error = errno;
    result.outcome = errno == ENOENT ? Outcome::kNoKernelSupport : Outcome::kKernelRefused;
    return result;
  }
  if (::setsockopt(fd, SOL_TLS, TLS_TX, &tx, tx.size) < 0) {
    result.error = errno;
    result.outcome = Outcome::kKernelRefused;
    return result;
  }
  // From here the kernel seals what we send: a refused RX cannot be undone (no ULP removal),
  // and BoringSSL could no longer write. The caller must close.
  if (::setsockopt(fd, SOL_TLS, TLS_RX, &rx, rx.size) < 0) {
    result.error = errno;
    result.outcome = Outcome::kBroken;
    return result;
  }
  result.outcome = Outcome::kInstalled;
  return result;
}

}  // namespace zproxy::ktls
