#include "dataplane/tls/ticket_keys.h"

#include <openssl/aead.h>
#include <openssl/rand.h>
#include <time.h>

#include <cstring>
#include <vector>

namespace zproxy::tls {
namespace {

uint64_t NowSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec);
}

struct AeadCtx {
  EVP_AEAD_CTX ctx;
  bool ok;
  explicit AeadCtx(const uint8_t* key) {
    ok = EVP_AEAD_CTX_init(&ctx, EVP_aead_aes_256_gcm(), key, 32, EVP_AEAD_DEFAULT_TAG_LENGTH,
                           nullptr) == 1;
  }
  ~AeadCtx() {
    if (ok) EVP_AEAD_CTX_cleanup(&ctx);
  }
};

// BoringSSL may pass the same buffer as input and output; the header we write first
// would overwrite the input, so such input is copied aside first (rare: once per ticket).
bool Overlaps(const uint8_t* in, size_t in_len, const uint8_t* out, size_t out_len) {
  return in < out + out_len && out < in + in_len;
}

}  // namespace

TicketKeys::TicketKeys(uint32_t rotation_s) : rotation_s_(rotation_s == 0 ? 3600 : rotation_s) {
  std::lock_guard<std::mutex> lock(mu_);
  RotateLocked(NowSeconds());
}

void TicketKeys::set_rotation_s(uint32_t rotation_s) {
  std::lock_guard<std::mutex> lock(mu_);
  if (rotation_s != 0) rotation_s_ = rotation_s;
}

void TicketKeys::RotateLocked(uint64_t now_s) {
  previous_ = current_;
  Key k;
  RAND_bytes(k.secret, sizeof(k.secret));
  do {
    RAND_bytes(reinterpret_cast<uint8_t*>(&k.id), sizeof(k.id));
  } while (k.id == previous_.id);
  k.valid = true;
  current_ = k;
  rotated_at_s_ = now_s;
}

void TicketKeys::MaybeRotateLocked() {
  uint64_t now = NowSeconds();
  if (now - rotated_at_s_ >= rotation_s_) RotateLocked(now);
}

void TicketKeys::RotateForTest() {
  std::lock_guard<std::mutex> lock(mu_);
  RotateLocked(NowSeconds());
}

bool TicketKeys::Seal(const uint8_t* in, size_t in_len, uint8_t* out, size_t max_out,
                      size_t* out_len) {
  if (max_out < in_len + kOverhead) return false;
  Key key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    MaybeRotateLocked();
    key = current_;
  }
  AeadCtx aead(key.secret);
  if (!aead.ok) return false;
  std::vector<uint8_t> copy;
  if (Overlaps(in, in_len, out, max_out)) {
    copy.assign(in, in + in_len);
    in = copy.data();
  }
  memcpy(out, &key.id, 4);
  uint8_t* nonce = out + 4;
  RAND_bytes(nonce, 12);
  size_t sealed = 0;
  // The key id and nonce are authenticated as associated data.
  if (EVP_AEAD_CTX_seal(&aead.ctx, out + 16, &sealed, max_out - 16, nonce, 12, in, in_len, out,
                        4) != 1) {
    return false;
  }
  *out_len = 16 + sealed;
  return true;
}

bool TicketKeys::Open(const uint8_t* in, size_t in_len, uint8_t* out, size_t max_out,
                      size_t* out_len) {
  if (in_len < kOverhead) return false;
  uint32_t id;
  memcpy(&id, in, 4);
  Key key;
  {
    std::lock_guard<std::mutex> lock(mu_);
    MaybeRotateLocked();
    if (current_.valid && current_.id == id) {
      key = current_;
    } else if (previous_.valid && previous_.id == id) {
      key = previous_;
    } else {
      return false;
    }
  }
  AeadCtx aead(key.secret);
  if (!aead.ok) return false;
  std::vector<uint8_t> copy;
  if (Overlaps(in, in_len, out, max_out)) {
    copy.assign(in, in + in_len);
    in = copy.data();
  }
  return EVP_AEAD_CTX_open(&aead.ctx, out, out_len, max_out, in + 4, 12, in + 16, in_len - 16, in,
                           4) == 1;
}

std::shared_ptr<TicketKeys> TicketKeyStore::For(const std::string& listener, uint32_t rotation_s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = keys_[listener];
  if (!slot) {
    slot = std::make_shared<TicketKeys>(rotation_s);
  } else {
    slot->set_rotation_s(rotation_s);
  }
  return slot;
}

}  // namespace zproxy::tls
