// Turns a completed BoringSSL handshake into the kernel's crypto_info structs (one per
// direction). Pure computation: no syscalls, so it is unit-testable on any kernel.
#pragma once

#include <linux/tls.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace zproxy::ktls {

// One direction's parameters in the layout setsockopt(SOL_TLS, TLS_TX/TLS_RX) expects.
struct KernelCryptoInfo {
  union {
    tls_crypto_info info;
    tls12_crypto_info_aes_gcm_128 aes_gcm_128;
    tls12_crypto_info_aes_gcm_256 aes_gcm_256;
    tls12_crypto_info_chacha20_poly1305 chacha20_poly1305;
  };
  socklen_t size = 0;
};

// The AEAD of a cipher suite as the kernel names it, with the sizes both sides need.
struct CipherLayout {
  uint16_t kernel_cipher = 0;  // TLS_CIPHER_*
  size_t key_len = 0;
  size_t salt_len = 0;      // implicit nonce part kept in `salt` (GCM: 4, ChaCha: 0)
  size_t iv_len = 0;        // the `iv` field (GCM: 8 explicit-nonce bytes, ChaCha: 12)
  size_t fixed_iv_len = 0;  // TLS 1.2 key block IV length (GCM: 4, ChaCha: 12)
};

// False for ciphers the kernel cannot take (CBC, 3DES, ...).
bool LayoutForCipher(const SSL_CIPHER* cipher, CipherLayout* out);

// RFC 8446 section 7.1: HKDF-Expand-Label(secret, "tls13 " + label, "", out_len).
bool HkdfExpandLabel(const EVP_MD* md, const uint8_t* secret, size_t secret_len, const char* label,
                     uint8_t* out, size_t out_len);

// TLS 1.3: key and IV from a traffic secret (RFC 8446 section 7.3), rec_seq from `seq`.
bool FromTls13Secret(const CipherLayout& layout, const EVP_MD* md, const uint8_t* secret,
                     size_t secret_len, uint64_t seq, KernelCryptoInfo* out);

// TLS 1.2: key and fixed IV from the key block; `seq` is both rec_seq and, for GCM, the
// first explicit nonce (BoringSSL uses the sequence number as the explicit nonce).
void FromTls12KeyBlock(const CipherLayout& layout, const uint8_t* key, const uint8_t* fixed_iv,
                       uint64_t seq, KernelCryptoInfo* out);

// Both directions for `ssl`: false if the version, the cipher or BoringSSL's key export
// does not fit. `tx` is what this side writes (SSL_get_write_sequence), `rx` what it reads.
enum class DeriveStatus : uint8_t { kOk, kUnsupportedVersion, kUnsupportedCipher };
DeriveStatus DeriveBothDirections(SSL* ssl, KernelCryptoInfo* tx, KernelCryptoInfo* rx);

// Overwrites key material (OPENSSL_cleanse: not optimized away).
void Wipe(KernelCryptoInfo* info);

}  // namespace zproxy::ktls
