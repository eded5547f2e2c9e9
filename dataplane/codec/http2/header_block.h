// What both sides of the HTTP/2 codec share: the header block being decoded, and the
// handler's handle for a stream kept as nghttp2's stream user data.
#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include "dataplane/codec/http2/server_session.h"
#include "dataplane/http/message.h"

namespace zproxy::codec::http2 {

// The header block being decoded (HEADERS + CONTINUATION: one at a time per connection),
// placed at the start of the handler's HeaderSpace: bytes (names and values, copied:
// HPACK output is not contiguous) grow up from after it, fields fill an array at the end.
struct HeaderBlock {
  HeaderSpace space;
  int32_t stream = 0;
  char* bytes = nullptr;
  size_t used = 0;
  size_t byte_cap = 0;
  http::Field* fields = nullptr;
  size_t count = 0;
  size_t max_fields = 0;
  size_t list_size = 0;  // as SETTINGS_MAX_HEADER_LIST_SIZE counts: name + value + 32
  size_t cookies = 0;
  int refused = 0;  // status to answer with instead of forwarding (431, 400)
  const char* why = nullptr;
  // Requests' pseudo-fields (and Host), responses' :status.
  std::string_view method, scheme, authority, path, protocol, host;
  uint16_t status = 0;

  // A block in `space`, or null when the space is too small for max_fields.
  static HeaderBlock* Place(HeaderSpace space, int32_t stream, size_t max_fields,
                            size_t max_bytes) {
    size_t fields_bytes = max_fields * sizeof(http::Field);
    if (space.data == nullptr || space.cap < sizeof(HeaderBlock) + fields_bytes + 256) {
      return nullptr;
    }
    HeaderBlock* b = new (space.data) HeaderBlock();
    b->space = space;
    b->stream = stream;
    b->bytes = space.data + sizeof(HeaderBlock);
    uintptr_t end = reinterpret_cast<uintptr_t>(space.data + space.cap - fields_bytes);
    b->fields = reinterpret_cast<http::Field*>(end & ~(alignof(http::Field) - 1));
    b->max_fields = max_fields;
    b->byte_cap = std::min<size_t>(reinterpret_cast<char*>(b->fields) - b->bytes, max_bytes);
    return b;
  }

  // Copies s into the byte area; empty view (and refused) when it does not fit.
  std::string_view Copy(const uint8_t* s, size_t n) {
    if (n > byte_cap - used) {
      Refuse(431, "head larger than max_header_bytes");
      return {};
    }
    char* dst = bytes + used;
    memcpy(dst, s, n);
    used += n;
    return {dst, n};
  }
  void Refuse(int code, const char* reason) {
    if (refused == 0) {
      refused = code;
      why = reason;
    }
  }
  // Counts a field against the list size; false (refused) past max_bytes.
  bool Count(size_t namelen, size_t valuelen, size_t max_bytes) {
    list_size += namelen + valuelen + 32;
    if (list_size > max_bytes) Refuse(431, "head larger than max_header_bytes");
    return refused == 0;
  }
  // Appends a regular field (copied); false when refused.
  bool Add(const uint8_t* name, size_t namelen, const uint8_t* value, size_t valuelen) {
    if (count == max_fields) {
      Refuse(431, "more fields than max_headers");
      return false;
    }
    std::string_view n = Copy(name, namelen);
    std::string_view v = Copy(value, valuelen);
    if (refused != 0) return false;
    fields[count++] = http::Field{n, v};
    return true;
  }
};

// Stream user data: the handler's handle + 1 once the handler knows the stream (so never
// null then): streams nghttp2 refused on its own are not reported to the handler.
inline void* HandleData(uint32_t handle) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(handle) + 1);
}
inline bool HandleOf(nghttp2_session* session, int32_t stream, uint32_t* handle) {
  void* p = nghttp2_session_get_stream_user_data(session, stream);
  if (p == nullptr) return false;
  *handle = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(p) - 1);
  return true;
}

}  // namespace zproxy::codec::http2
