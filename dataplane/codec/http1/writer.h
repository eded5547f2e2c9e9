// Appends bytes to a fixed buffer; remembers an overflow instead of failing each call,
// so a head is written straight through and checked once at the end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace zproxy::codec::http1 {

class Writer {
 public:
  Writer(char* buf, size_t cap) : buf_(buf), cap_(cap) {}
  void Put(std::string_view s);
  void PutUint(uint64_t v);
  bool overflow() const { return overflow_; }
  size_t size() const { return len_; }
  // The length written, or 0 if it did not fit.
  size_t Result() const { return overflow_ ? 0 : len_; }

 private:
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
  bool overflow_ = false;
};

}  // namespace zproxy::codec::http1
