// Payload bytes and hashing shared by the gRPC test server and client, so each side can
// check what the other sent without shipping it back.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <string>

namespace zproxy::grpctest {

// Message `index` of a call: byte i = (i * 31 + index * 7 + 11) & 0xff. The index term makes
// a reordered or duplicated message change the hash.
inline std::string PatternPayload(uint64_t index, size_t size) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; i++) s[i] = static_cast<char>((i * 31 + index * 7 + 11) & 0xff);
  return s;
}

// SHA-256 over a sequence of payloads, as lowercase hex.
// (EVP: the SHA256_* calls are deprecated in OpenSSL 3.)
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Add(const std::string& data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
  std::string Hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static const char* kDigits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; i++) {
      out += kDigits[md[i] >> 4];
      out += kDigits[md[i] & 15];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace zproxy::grpctest
