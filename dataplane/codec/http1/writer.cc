#include "dataplane/codec/http1/writer.h"

#include <cstring>

namespace zproxy::codec::http1 {

void Writer::Put(std::string_view s) {
  // An empty view may have a null data pointer (a status line without a reason phrase):
  // memcpy must not see it, even for 0 bytes.
  if (s.empty()) return;
  if (overflow_ || s.size() > cap_ - len_) {
    overflow_ = true;
    return;
  }
  memcpy(buf_ + len_, s.data(), s.size());
  len_ += s.size();
}

void Writer::PutUint(uint64_t v) {
  char tmp[24];
  size_t n = sizeof(tmp);
  do {
    tmp[--n] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  Put(std::string_view(tmp + n, sizeof(tmp) - n));
}

}  // namespace zproxy::codec::http1
