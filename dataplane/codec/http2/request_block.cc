#include "dataplane/codec/http2/request_block.h"

#include <cstdint>
#include <cstring>

namespace zproxy::codec::http2 {
namespace {

class BlockWriter {
 public:
  BlockWriter(char* out, size_t cap) : out_(out), cap_(cap) {}
  void Put(std::string_view name, std::string_view value) {
    size_t need = 6 + name.size() + value.size();
    if (failed_ || name.size() > 0xffff || need > cap_ - len_) {
      failed_ = true;
      return;
    }
    auto n = static_cast<uint16_t>(name.size());
    auto v = static_cast<uint32_t>(value.size());
    memcpy(out_ + len_, &n, 2);
    memcpy(out_ + len_ + 2, &v, 4);
    // (Empty views may carry a null pointer, which memcpy must not see.)
    if (!name.empty()) memcpy(out_ + len_ + 6, name.data(), name.size());
    if (!value.empty()) memcpy(out_ + len_ + 6 + name.size(), value.data(), value.size());
    len_ += need;
  }
  // ":path" = "/" + query (the query's view has no "/" before it).
  void PutPathWithSlash(std::string_view query) {
    size_t need = 6 + 5 + 1 + query.size();
    if (failed_ || need > cap_ - len_) {
      failed_ = true;
      return;
    }
    uint16_t n = 5;
    auto v = static_cast<uint32_t>(query.size() + 1);
    memcpy(out_ + len_, &n, 2);
    memcpy(out_ + len_ + 2, &v, 4);
    memcpy(out_ + len_ + 6, ":path/", 6);
    if (!query.empty()) memcpy(out_ + len_ + 12, query.data(), query.size());
    len_ += need;
  }
  size_t Result() const { return failed_ ? 0 : len_; }

 private:
  char* out_;
  size_t cap_;
  size_t len_ = 0;
  bool failed_ = false;
};

}  // namespace

size_t EncodeRequestBlock(const http::RequestHead& req, std::string_view scheme, bool te_trailers,
                          char* out, size_t cap) {
  BlockWriter w(out, cap);
  w.Put(":method", req.method);
  if (req.method_id != http::Method::kConnect) w.Put(":scheme", scheme);
  w.Put(":authority", req.authority);
  if (req.method_id != http::Method::kConnect) {
    std::string_view path = req.path_and_query;
    // "?q" from an absolute-form target without a path (codec/http1): the path is "/".
    if (!path.empty() && path.front() == '?') {
      w.PutPathWithSlash(path);
    } else {
      w.Put(":path", path);
    }
  }
  for (const http::Field& f : req.fields) w.Put(f.name, f.value);
  if (te_trailers) w.Put("te", "trailers");
  return w.Result();
}

size_t EncodeFieldBlock(std::span<const http::Field> fields, char* out, size_t cap) {
  BlockWriter w(out, cap);
  for (const http::Field& f : fields) w.Put(f.name, f.value);
  return w.Result();
}

bool NextBlockField(std::string_view* block, std::string_view* name, std::string_view* value) {
  if (block->size() < 6) return false;
  uint16_t n;
  uint32_t v;
  memcpy(&n, block->data(), 2);
  memcpy(&v, block->data() + 2, 4);
  if (block->size() < 6 + static_cast<size_t>(n) + v) return false;
  *name = block->substr(6, n);
  *value = block->substr(6 + n, v);
  block->remove_prefix(6 + n + v);
  return true;
}

}  // namespace zproxy::codec::http2
