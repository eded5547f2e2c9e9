// Session ticket keys for one listener, shared by every worker (so a ticket issued on one
// worker resumes on any other) and by successive config snapshots (so a config change does
// not invalidate the tickets clients hold). A new key is made every rotation period; the
// previous one still opens tickets, so a ticket lives up to two periods.
//
// Tickets are sealed with AES-256-GCM: key id (4 bytes) | nonce (12) | ciphertext | tag.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace zproxy::tls {

class TicketKeys {
 public:
  static constexpr size_t kOverhead = 4 + 12 + 16;

  explicit TicketKeys(uint32_t rotation_s);
  void set_rotation_s(uint32_t rotation_s);

  // Returns false if `max_out` is too small or sealing failed.
  bool Seal(const uint8_t* in, size_t in_len, uint8_t* out, size_t max_out, size_t* out_len);
  // Returns false for a ticket no current key opens (expired, forged, another process's).
  bool Open(const uint8_t* in, size_t in_len, uint8_t* out, size_t max_out, size_t* out_len);

  // For tests: rotate now, as if a period had passed.
  void RotateForTest();

 private:
  struct Key {
    uint32_t id = 0;
    uint8_t secret[32] = {0};
    bool valid = false;
  };
  void RotateLocked(uint64_t now_s);
  void MaybeRotateLocked();

  std::mutex mu_;  // taken once per full handshake or resumption, never per record
  uint32_t rotation_s_;
  uint64_t rotated_at_s_ = 0;
  Key current_, previous_;
};

// Ticket keys by listener name, owned by the data plane process for its lifetime: a new
// snapshot of a listener reuses its keys.
class TicketKeyStore {
 public:
  std::shared_ptr<TicketKeys> For(const std::string& listener, uint32_t rotation_s);

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<TicketKeys>> keys_;
};

}  // namespace zproxy::tls
