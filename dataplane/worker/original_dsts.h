// Per client connection of a listener with original_destination: where its client was
// going (dataplane/sidecar/original_dst.h). Kept beside the connection slab rather than in
// Conn, so connections of every other listener (and Conn's 72 bytes) pay nothing. Chunks
// are allocated as connection indexes grow, like the slab's; steady state allocates
// nothing. An entry counts only while its generation is the connection's: a slot reused by
// a connection of another listener reads as "none".
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/sidecar/original_dst.h"

namespace zproxy::dataplane {

class OriginalDsts {
 public:
  void Set(uint32_t idx, uint16_t gen, bool usable, const sidecar::SockAddr& addr) {
    while (idx / kChunk >= chunks_.size()) chunks_.push_back(std::make_unique<Entry[]>(kChunk));
    Entry& e = chunks_[idx / kChunk][idx % kChunk];
    e.gen = gen;
    e.usable = usable;
    e.addr = addr;
  }
  // The destination to forward to, or null (not recovered, or not redirected).
  const sidecar::SockAddr* Get(uint32_t idx, uint16_t gen) const {
    if (idx / kChunk >= chunks_.size()) return nullptr;
    const Entry& e = chunks_[idx / kChunk][idx % kChunk];
    return e.usable && e.gen == gen ? &e.addr : nullptr;
  }

 private:
  static constexpr uint32_t kChunk = 1024;
  struct Entry {
    uint16_t gen = 0;
    bool usable = false;
    sidecar::SockAddr addr{};
  };
  std::vector<std::unique_ptr<Entry[]>> chunks_;
};

}  // namespace zproxy::dataplane
