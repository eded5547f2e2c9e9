#include "dataplane/ktls/key_material.h"

#include <openssl/digest.h>
#include <openssl/hkdf.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/span.h>

#include <cstring>

namespace zproxy::ktls {
namespace {

// The kernel wants sequence numbers and nonces big-endian, as they appear on the wire.
void PutBigEndian64(uint64_t v, uint8_t out[8]) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

// Writes key, salt, iv and rec_seq into the struct matching layout.kernel_cipher. `iv` is
// salt_len + iv_len bytes: the salt comes first, as in the TLS nonce.
void Fill(const CipherLayout& layout, uint16_t version, const uint8_t* key, const uint8_t* iv,
          const uint8_t rec_seq[8], KernelCryptoInfo* out) {
  std::memset(static_cast<void*>(out), 0, sizeof(*out));
  out->info.version = version;
  out->info.cipher_type = layout.kernel_cipher;
  switch (layout.kernel_cipher) {
    case TLS_CIPHER_AES_GCM_128: {
      auto& c = out->aes_gcm_128;
      std::memcpy(c.key, key, sizeof(c.key));
      std::memcpy(c.salt, iv, sizeof(c.salt));
      std::memcpy(c.iv, iv + sizeof(c.salt), sizeof(c.iv));
      std::memcpy(c.rec_seq, rec_seq, sizeof(c.rec_seq));
      out->size = sizeof(c);
      break;
    }
    case TLS_CIPHER_AES_GCM_256: {
      auto& c = out->aes_gcm_256;
      std::memcpy(c.key, key, sizeof(c.key));
      std::memcpy(c.salt, iv, sizeof(c.salt));
      std::memcpy(c.iv, iv + sizeof(c.salt), sizeof(c.iv));
      std::memcpy(c.rec_seq, rec_seq, sizeof(c.rec_seq));
      out->size = sizeof(c);
      break;
    }
    case TLS_CIPHER_CHACHA20_POLY1305: {
      auto& c = out->chacha20_poly1305;
      std::memcpy(c.key, key, sizeof(c.key));
      std::memcpy(c.iv, iv, sizeof(c.iv));
      std::memcpy(c.rec_seq, rec_seq, sizeof(c.rec_seq));
      out->size = sizeof(c);
      break;
    }
  }
}

}  // namespace

bool LayoutForCipher(const SSL_CIPHER* cipher, CipherLayout* out) {
  if (cipher == nullptr) return false;
  switch (SSL_CIPHER_get_cipher_nid(cipher)) {
    case NID_aes_128_gcm:
      *out = {TLS_CIPHER_AES_GCM_128, TLS_CIPHER_AES_GCM_128_KEY_SIZE,
              TLS_CIPHER_AES_GCM_128_SALT_SIZE, TLS_CIPHER_AES_GCM_128_IV_SIZE, 4};
      return true;
    case NID_aes_256_gcm:
      *out = {TLS_CIPHER_AES_GCM_256, TLS_CIPHER_AES_GCM_256_KEY_SIZE,
              TLS_CIPHER_AES_GCM_256_SALT_SIZE, TLS_CIPHER_AES_GCM_256_IV_SIZE, 4};
      return true;
    case NID_chacha20_poly1305:
      *out = {TLS_CIPHER_CHACHA20_POLY1305, TLS_CIPHER_CHACHA20_POLY1305_KEY_SIZE,
              TLS_CIPHER_CHACHA20_POLY1305_SALT_SIZE, TLS_CIPHER_CHACHA20_POLY1305_IV_SIZE, 12};
      return true;
    default:
      return false;
  }
}

bool HkdfExpandLabel(const EVP_MD* md, const uint8_t* secret, size_t secret_len, const char* label,
                     uint8_t* out, size_t out_len) {
  // struct { uint16 length; opaque label<7..255> = "tls13 " + label; opaque context<0..255>; }
  static constexpr char kPrefix[] = "tls13 ";
  const size_t prefix_len = sizeof(kPrefix) - 1;
  const size_t label_len = std::strlen(label);
  uint8_t info[2 + 1 + 255 + 1];
  if (prefix_len + label_len > 255 || out_len > 0xffff) return false;
  size_t n = 0;
  info[n++] = static_cast<uint8_t>(out_len >> 8);
  info[n++] = static_cast<uint8_t>(out_len);
  info[n++] = static_cast<uint8_t>(prefix_len + label_len);
  std::memcpy(info + n, kPrefix, prefix_len);
  n += prefix_len;
  std::memcpy(info + n, label, label_len);
  n += label_len;
  info[n++] = 0;  // empty context
  return HKDF_expand(out, out_len, md, secret, secret_len, info, n) == 1;
}

bool FromTls13Secret(const CipherLayout& layout, const EVP_MD* md, const uint8_t* secret,
                     size_t secret_len, uint64_t seq, KernelCryptoInfo* out) {
  uint8_t key[32];
  uint8_t iv[12];  // every TLS 1.3 AEAD nonce is 12 bytes (salt + iv in the kernel's terms)
  uint8_t rec_seq[8];
  if (layout.key_len > sizeof(key) || layout.salt_len + layout.iv_len != sizeof(iv)) return false;
  const bool ok = HkdfExpandLabel(md, secret, secret_len, "key", key, layout.key_len) &&
                  HkdfExpandLabel(md, secret, secret_len, "iv", iv, sizeof(iv));
  if (ok) {
    PutBigEndian64(seq, rec_seq);
    Fill(layout, TLS_1_3_VERSION, key, iv, rec_seq, out);
  }
  OPENSSL_cleanse(key, sizeof(key));
  OPENSSL_cleanse(iv, sizeof(iv));
  return ok;
}

void FromTls12KeyBlock(const CipherLayout& layout, const uint8_t* key, const uint8_t* fixed_iv,
                       uint64_t seq, KernelCryptoInfo* out) {
  uint8_t iv[12];
  uint8_t rec_seq[8];
  PutBigEndian64(seq, rec_seq);
  std::memcpy(iv, fixed_iv, layout.fixed_iv_len);
  // GCM: 4 fixed bytes (salt) + the 8-byte explicit nonce, which BoringSSL sets to the
  // record sequence number; the kernel increments it per record from this start value.
  if (layout.fixed_iv_len == layout.salt_len) std::memcpy(iv + layout.salt_len, rec_seq, 8);
  Fill(layout, TLS_1_2_VERSION, key, iv, rec_seq, out);
  OPENSSL_cleanse(iv, sizeof(iv));
}

DeriveStatus DeriveBothDirections(SSL* ssl, KernelCryptoInfo* tx, KernelCryptoInfo* rx) {
  if (SSL_in_init(ssl)) return DeriveStatus::kUnsupportedVersion;
  const int version = SSL_version(ssl);
  if (version != TLS1_2_VERSION && version != TLS1_3_VERSION) {
    return DeriveStatus::kUnsupportedVersion;
  }
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl);
  CipherLayout layout;
  if (!LayoutForCipher(cipher, &layout)) return DeriveStatus::kUnsupportedCipher;
  const uint64_t write_seq = SSL_get_write_sequence(ssl);
  const uint64_t read_seq = SSL_get_read_sequence(ssl);

  if (version == TLS1_3_VERSION) {
    const EVP_MD* md = EVP_get_digestbynid(SSL_CIPHER_get_prf_nid(cipher));
    bssl::Span<const uint8_t> read_secret, write_secret;
    if (md == nullptr || !bssl::SSL_get_traffic_secrets(ssl, &read_secret, &write_secret) ||
        !FromTls13Secret(layout, md, write_secret.data(), write_secret.size(), write_seq, tx) ||
        !FromTls13Secret(layout, md, read_secret.data(), read_secret.size(), read_seq, rx)) {
      return DeriveStatus::kUnsupportedCipher;
    }
    return DeriveStatus::kOk;
  }

  // TLS 1.2 key block (RFC 5246 section 6.3): client MAC, server MAC, client key, server
  // key, client IV, server IV. AEAD suites have no MAC keys.
  uint8_t block[2 * (32 + 12)];
  const size_t block_len = SSL_get_key_block_len(ssl);
  if (block_len != 2 * (layout.key_len + layout.fixed_iv_len) ||
      !SSL_generate_key_block(ssl, block, block_len)) {
    return DeriveStatus::kUnsupportedCipher;
  }
  const uint8_t* client_key = block;
  const uint8_t* server_key = block + layout.key_len;
  const uint8_t* client_iv = block + 2 * layout.key_len;
  const uint8_t* server_iv = client_iv + layout.fixed_iv_len;
  const bool server = SSL_is_server(ssl);
  FromTls12KeyBlock(layout, server ? server_key : client_key, server ? server_iv : client_iv,
                    write_seq, tx);
  FromTls12KeyBlock(layout, server ? client_key : server_key, server ? client_iv : server_iv,
                    read_seq, rx);
  OPENSSL_cleanse(block, sizeof(block));
  return DeriveStatus::kOk;
}

void Wipe(KernelCryptoInfo* info) { OPENSSL_cleanse(info, sizeof(*info)); }

}  // namespace zproxy::ktls
