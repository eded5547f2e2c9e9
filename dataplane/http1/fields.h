// Field-line parsing shared by the request and response parsers: syntax (RFC 9112 5) and
// the framing/connection semantics of the fields a proxy must understand (RFC 9110/9112).
// Internal to dataplane/http1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/http1/http1.h"

namespace zproxy::http1::internal {

// What the fields said, accumulated while parsing them.
struct FieldSummary {
  size_t count = 0;
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool chunked = false;  // Transfer-Encoding: chunked (the only coding accepted)
  bool has_host = false;
  std::string_view host;
  bool conn_close = false;
  bool conn_keep_alive = false;
  bool conn_upgrade = false;
  bool has_connection = false;
  bool has_upgrade = false;  // an Upgrade field
  bool expect_continue = false;
  uint64_t hop_by_hop[2] = {0, 0};
};

struct FieldContext {
  bool is_request = true;     // Host rules apply to requests only
  uint8_t version_minor = 1;  // Transfer-Encoding is refused in HTTP/1.0
  size_t max_fields = 0;      // min(storage, limits.max_headers, 128)
};

// Parses field lines starting at `p` up to and including the empty line that ends the
// head. Input ends at `end` (already clipped to the head size limit by the caller).
// kDone: *head_end points after the final CRLF. kNeedMore: ran out of input.
Status ParseFields(const char* p, const char* end, const FieldContext& ctx,
                   std::span<Header> storage, FieldSummary* s, const char** head_end, Error* error);

// Marks the fields named by Connection options as hop-by-hop (call once all are parsed).
void MarkConnectionOptions(std::span<const Header> headers, FieldSummary* s);

// Strict authority check (host [":" port]) for Host values and request-targets.
// `require_port` is for CONNECT's authority-form.
bool IsValidAuthority(std::string_view a, bool require_port);

inline void SetBit(uint64_t mask[2], size_t i) { mask[i >> 6] |= uint64_t{1} << (i & 63); }

}  // namespace zproxy::http1::internal
