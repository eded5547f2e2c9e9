// Request head: request-line (RFC 9112 3), request-target forms (3.2), then the fields.
#include <algorithm>
#include <cstring>

#include "dataplane/http1/chars.h"
#include "dataplane/http1/fields.h"
#include "dataplane/http1/http1.h"
#include "dataplane/http1/simd_scan.h"

namespace zproxy::http1 {
namespace {

using internal::FieldContext;
using internal::FieldSummary;

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// Classifies the request-target and fills path (and host for absolute/authority-form).
Error ParseTarget(RequestHead* out) {
  std::string_view t = out->target;
  if (out->method_id == Method::kConnect) {
    // authority-form only (RFC 9112 3.2.3), and only for CONNECT.
    if (!internal::IsValidAuthority(t, true)) return Error::kBadTarget;
    out->path = t;
    return Error::kNone;
  }
  if (t[0] == '/') {
    out->path = t.substr(0, std::min(t.find('?'), t.size()));
    return Error::kNone;
  }
  if (t == "*") {
    if (out->method_id != Method::kOptions) return Error::kBadTarget;
    out->path = t;
    return Error::kNone;
  }
  size_t scheme = StartsWithIgnoreCase(t, "http://")    ? 7
                  : StartsWithIgnoreCase(t, "https://") ? 8
                                                        : 0;
  if (scheme == 0) return Error::kBadTarget;
  std::string_view rest = t.substr(scheme);
  size_t auth_end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, auth_end);
  // userinfo is deprecated and not allowed in http(s) URIs (RFC 9110 4.2.4).
  if (authority.empty() || !internal::IsValidAuthority(authority, false)) {
    return Error::kBadTarget;
  }
  std::string_view after = rest.substr(auth_end);
  if (!after.empty() && after[0] == '/') {
    out->path = after.substr(0, std::min(after.find('?'), after.size()));
  } else {
    out->path = "/";
  }
  out->host = authority;
  return Error::kNone;
}

}  // namespace

Status ParseRequest(std::string_view buf, const Limits& limits, std::span<Header> storage,
                    RequestHead* out, Error* error) {
  *out = RequestHead();
  *error = Error::kNone;
  auto fail = [error](Error e) {
    *error = e;
    return Status::kError;
  };
  const char* begin = buf.data();
  const size_t n = buf.size();
  const size_t head_cap = limits.max_header_bytes;
  size_t line_cap = head_cap;  // set once the request line starts
  // Input ran out at `lim`: wait for more only if neither limit stopped us.
  auto ran_out = [&](const char* lim) {
    size_t at = static_cast<size_t>(lim - begin);
    if (at == n && n < head_cap && n < line_cap) return Status::kNeedMore;
    return fail(line_cap < head_cap && at == line_cap ? Error::kRequestLineTooLong
                                                      : Error::kHeadersTooLarge);
  };
  const char* head_end = begin + std::min(n, head_cap);
  const char* p = begin;

  // RFC 9112 2.2: empty lines before the request-line may be ignored.
  while (p < head_end && (*p == '\r' || *p == '\n')) {
    if (*p == '\n') return fail(Error::kBareLf);
    if (p + 1 >= head_end) return ran_out(head_end);
    if (p[1] != '\n') return fail(Error::kBadMethod);
    p += 2;
  }
  const size_t line_start = static_cast<size_t>(p - begin);
  if (limits.max_request_line_bytes + size_t{2} < head_cap - std::min(head_cap, line_start)) {
    line_cap = line_start + limits.max_request_line_bytes + 2;  // line + CRLF
  }
  const char* lim = begin + std::min(n, line_cap);

  const char* method = p;
  while (p < lim && internal::IsTchar(*p)) p++;
  if (p >= lim) return ran_out(lim);
  if (p == method || *p != ' ') return fail(*p == '\n' ? Error::kBareLf : Error::kBadMethod);
  out->method = std::string_view(method, static_cast<size_t>(p - method));
  out->method_id = http::MethodFromToken(out->method);
  p++;

  const char* target = p;
  p = internal::ScanTarget(p, lim);
  if (p >= lim) return ran_out(lim);
  if (*p != ' ') {
    // No version at all (HTTP/0.9 style) vs. a byte that may not appear in a target.
    if (*p == '\r' && p != target) return fail(Error::kBadVersion);
    if (*p == '\n') return fail(Error::kBareLf);
    return fail(Error::kBadTarget);
  }
  if (p == target) return fail(Error::kBadTarget);
  out->target = std::string_view(target, static_cast<size_t>(p - target));
  p++;

  static constexpr char kPattern[] = "HTTP/0.0";
  for (int i = 0; i < 8; i++, p++) {
    if (p >= lim) return ran_out(lim);
    bool ok = kPattern[i] == '0' ? internal::IsDigit(*p) : *p == kPattern[i];
    if (!ok) return fail(*p == '\n' ? Error::kBareLf : Error::kBadVersion);
  }
  if (p[-3] != '1' || p[-1] > '1') return fail(Error::kUnsupportedVersion);
  out->version_minor = static_cast<uint8_t>(p[-1] - '0');
  if (p >= lim) return ran_out(lim);
  if (*p == '\n') return fail(Error::kBareLf);
  if (*p != '\r') return fail(Error::kBadVersion);
  p++;
  if (p >= lim) return ran_out(lim);
  if (*p != '\n') return fail(Error::kBadVersion);
  p++;

  Error e = ParseTarget(out);
  if (e != Error::kNone) return fail(e);

  FieldContext ctx;
  ctx.is_request = true;
  ctx.version_minor = out->version_minor;
  ctx.max_fields = std::min<size_t>({storage.size(), limits.max_headers, 128});
  FieldSummary s;
  const char* end_of_head = nullptr;
  line_cap = head_cap;  // the request line is complete; only the head limit applies now
  Status st = internal::ParseFields(p, head_end, ctx, storage, &s, &end_of_head, error);
  if (st == Status::kNeedMore) return ran_out(head_end);
  if (st == Status::kError) return st;

  if (out->version_minor == 1 && !s.has_host) return fail(Error::kMissingHost);
  out->headers = storage.subspan(0, s.count);
  internal::MarkConnectionOptions(out->headers, &s);
  if (out->host.empty()) out->host = s.host;
  if (out->method_id == Method::kConnect) out->host = out->target;
  if (s.chunked) {
    out->body = BodyKind::kChunked;
  } else if (s.has_content_length && s.content_length > 0) {
    out->body = BodyKind::kContentLength;
    out->content_length = s.content_length;
  }
  out->keep_alive = !s.conn_close && (out->version_minor == 1 || s.conn_keep_alive);
  out->expect_continue = s.expect_continue;
  out->upgrade = s.conn_upgrade && s.has_upgrade;
  out->hop_by_hop[0] = s.hop_by_hop[0];
  out->hop_by_hop[1] = s.hop_by_hop[1];
  out->head_bytes = static_cast<size_t>(end_of_head - begin);
  return Status::kDone;
}

}  // namespace zproxy::http1
