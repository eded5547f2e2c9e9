// Key derivation against published vectors (RFC 8448 section 3, the simple 1-RTT trace)
// and the kernel struct layout, without a kernel or a handshake.
#include "dataplane/ktls/key_material.h"

#include <gtest/gtest.h>
#include <openssl/digest.h>

#include <string>
#include <vector>

namespace zproxy::ktls {
namespace {

std::vector<uint8_t> Hex(std::string s) {
  std::vector<uint8_t> out;
  std::string digits;
  for (char c : s) {
    if (c != ' ') digits += c;
  }
  for (size_t i = 0; i + 1 < digits.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(std::stoi(digits.substr(i, 2), nullptr, 16)));
  }
  return out;
}

const char kServerAppSecret[] =
    "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 "
    "43";
const char kClientAppSecret[] =
    "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 "
    "a5";

TEST(KeyMaterial, HkdfExpandLabelMatchesRfc8448) {
  const auto secret = Hex(kServerAppSecret);
  uint8_t key[16], iv[12];
  ASSERT_TRUE(HkdfExpandLabel(EVP_sha256(), secret.data(), secret.size(), "key", key, 16));
  ASSERT_TRUE(HkdfExpandLabel(EVP_sha256(), secret.data(), secret.size(), "iv", iv, 12));
  EXPECT_EQ(std::vector<uint8_t>(key, key + 16),
            Hex("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56"));
  EXPECT_EQ(std::vector<uint8_t>(iv, iv + 12), Hex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84"));
}

TEST(KeyMaterial, Tls13AesGcm128SplitsSaltAndIv) {
  const auto secret = Hex(kClientAppSecret);
  CipherLayout layout{TLS_CIPHER_AES_GCM_128, 16, 4, 8, 4};
  KernelCryptoInfo info;
  ASSERT_TRUE(FromTls13Secret(layout, EVP_sha256(), secret.data(), secret.size(), 0x0102, &info));
  EXPECT_EQ(info.size, sizeof(tls12_crypto_info_aes_gcm_128));
  EXPECT_EQ(info.info.version, TLS_1_3_VERSION);
  EXPECT_EQ(info.info.cipher_type, TLS_CIPHER_AES_GCM_128);
  const auto& c = info.aes_gcm_128;
  EXPECT_EQ(std::vector<uint8_t>(c.key, c.key + 16),
            Hex("17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51"));
  // iv 5b 78 92 3d | ee 08 57 90 33 e5 23 d9: the first 4 bytes are the kernel's salt.
  EXPECT_EQ(std::vector<uint8_t>(c.salt, c.salt + 4), Hex("5b 78 92 3d"));
  EXPECT_EQ(std::vector<uint8_t>(c.iv, c.iv + 8), Hex("ee 08 57 90 33 e5 23 d9"));
  EXPECT_EQ(std::vector<uint8_t>(c.rec_seq, c.rec_seq + 8), Hex("00 00 00 00 00 00 01 02"));
}

TEST(KeyMaterial, Tls13Chacha20KeepsTheWholeIv) {
  const auto secret = Hex(kServerAppSecret);
  CipherLayout layout{TLS_CIPHER_CHACHA20_POLY1305, 32, 0, 12, 12};
  KernelCryptoInfo info;
  ASSERT_TRUE(FromTls13Secret(layout, EVP_sha256(), secret.data(), secret.size(), 7, &info));
  EXPECT_EQ(info.size, sizeof(tls12_crypto_info_chacha20_poly1305));
  EXPECT_EQ(std::vector<uint8_t>(info.chacha20_poly1305.iv, info.chacha20_poly1305.iv + 12),
            Hex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84"));
  EXPECT_EQ(info.chacha20_poly1305.rec_seq[7], 7);
}

TEST(KeyMaterial, Tls12GcmExplicitNonceStartsAtTheSequenceNumber) {
  CipherLayout layout{TLS_CIPHER_AES_GCM_256, 32, 4, 8, 4};
  std::vector<uint8_t> key(32, 0xab);
  const uint8_t fixed_iv[4] = {1, 2, 3, 4};
  KernelCryptoInfo info;
  FromTls12KeyBlock(layout, key.data(), fixed_iv, 0x1122334455667788ull, &info);
  EXPECT_EQ(info.info.version, TLS_1_2_VERSION);
  EXPECT_EQ(info.size, sizeof(tls12_crypto_info_aes_gcm_256));
  const auto& c = info.aes_gcm_256;
  EXPECT_EQ(std::vector<uint8_t>(c.salt, c.salt + 4), std::vector<uint8_t>(fixed_iv, fixed_iv + 4));
  EXPECT_EQ(std::vector<uint8_t>(c.iv, c.iv + 8), Hex("11 22 33 44 55 66 77 88"));
  EXPECT_EQ(std::vector<uint8_t>(c.rec_seq, c.rec_seq + 8), Hex("11 22 33 44 55 66 77 88"));
  EXPECT_EQ(c.key[31], 0xab);
}

}  // namespace
}  // namespace zproxy::ktls
