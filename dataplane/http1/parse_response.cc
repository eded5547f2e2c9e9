// Response head: status-line (RFC 9112 4), fields, and body framing (RFC 9112 6.3).
#include <algorithm>

#include "dataplane/http1/chars.h"
#include "dataplane/http1/fields.h"
#include "dataplane/http1/http1.h"
#include "dataplane/http1/simd_scan.h"

namespace zproxy::http1 {

Status ParseResponse(std::string_view buf, Method request_method, const Limits& limits,
                     std::span<Header> storage, ResponseHead* out, Error* error) {
  *out = ResponseHead();
  *error = Error::kNone;
  auto fail = [error](Error e) {
    *error = e;
    return Status::kError;
  };
  const char* begin = buf.data();
  const size_t head_cap = limits.max_header_bytes;
  const char* end = begin + std::min(buf.size(), head_cap);
  auto ran_out = [&]() {
    return buf.size() < head_cap ? Status::kNeedMore : fail(Error::kHeadersTooLarge);
  };
  const char* p = begin;

  // Some servers send a stray CRLF after a body; like the request side (RFC 9112 2.2),
  // empty lines before the status-line carry no meaning and are skipped.
  while (p < end && (*p == '\r' || *p == '\n')) {
    if (*p == '\n') return fail(Error::kBareLf);
    if (p + 1 >= end) return ran_out();
    if (p[1] != '\n') return fail(Error::kBadStatusLine);
    p += 2;
  }
  const char* line = p;
  static constexpr char kPattern[] = "HTTP/0.0 000";
  for (int i = 0; i < 12; i++, p++) {
    if (p >= end) return ran_out();
    bool ok = kPattern[i] == '0' ? internal::IsDigit(*p) : *p == kPattern[i];
    if (!ok) return fail(*p == '\n' ? Error::kBareLf : Error::kBadStatusLine);
  }
  if (line[5] != '1' || line[7] > '1') return fail(Error::kUnsupportedVersion);
  out->version_minor = static_cast<uint8_t>(line[7] - '0');
  out->status =
      static_cast<uint16_t>((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
  if (out->status < 100) return fail(Error::kBadStatusLine);

  if (p >= end) return ran_out();
  // reason-phrase may be empty; tolerate the missing SP before an empty one, which some
  // servers send ("HTTP/1.1 200\r\n"). The only leniency here.
  if (*p == ' ') {
    p++;
    const char* reason = p;
    p = internal::ScanFieldValue(p, end);
    if (p >= end) return ran_out();
    out->reason = std::string_view(reason, static_cast<size_t>(p - reason));
  }
  if (*p == '\n') return fail(Error::kBareLf);
  if (*p != '\r') return fail(Error::kBadStatusLine);
  if (++p >= end) return ran_out();
  if (*p != '\n') return fail(Error::kBadStatusLine);
  p++;

  internal::FieldContext ctx;
  ctx.is_request = false;
  ctx.version_minor = out->version_minor;
  ctx.max_fields = std::min<size_t>({storage.size(), limits.max_headers, 128});
  internal::FieldSummary s;
  const char* head_end = nullptr;
  Status st = internal::ParseFields(p, end, ctx, storage, &s, &head_end, error);
  if (st == Status::kNeedMore) return ran_out();
  if (st == Status::kError) return st;

  out->headers = storage.subspan(0, s.count);
  internal::MarkConnectionOptions(out->headers, &s);
  out->keep_alive = !s.conn_close && (out->version_minor == 1 || s.conn_keep_alive);
  out->upgrade = s.conn_upgrade && s.has_upgrade;
  const uint16_t code = out->status;
  if (code < 200 || code == 204 || code == 304 || request_method == Method::kHead ||
      (request_method == Method::kConnect && code < 300)) {
    out->body = BodyKind::kNone;  // no body whatever the framing fields say
  } else if (s.chunked) {
    out->body = BodyKind::kChunked;
  } else if (s.has_content_length) {
    out->body = s.content_length > 0 ? BodyKind::kContentLength : BodyKind::kNone;
    out->content_length = s.content_length;
  } else {
    out->body = BodyKind::kCloseDelimited;
    out->keep_alive = false;
  }
  out->hop_by_hop[0] = s.hop_by_hop[0];
  out->hop_by_hop[1] = s.hop_by_hop[1];
  out->head_bytes = static_cast<size_t>(head_end - begin);
  return Status::kDone;
}

}  // namespace zproxy::http1
