// Appends strings into caller-owned scratch memory (per-worker buffers on the hot path):
// no allocation; once something does not fit, every later Put is ignored and ok() is false.
#pragma once

#include <cstring>
#include <span>
#include <string_view>

namespace zproxy::proxy {

struct ScratchWriter {
  std::span<char> buf;
  size_t len = 0;
  bool ok = true;

  explicit ScratchWriter(std::span<char> b) : buf(b) {}
  void Put(std::string_view s) {
    if (!ok || s.size() > buf.size() - len) {
      ok = false;
      return;
    }
    if (!s.empty()) memcpy(buf.data() + len, s.data(), s.size());
    len += s.size();
  }
  // What was written since `mark` (a len taken earlier).
  std::string_view Since(size_t mark) const { return {buf.data() + mark, len - mark}; }
};

}  // namespace zproxy::proxy
