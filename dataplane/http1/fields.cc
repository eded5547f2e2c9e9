#include "dataplane/http1/fields.h"

#include "dataplane/http1/chars.h"
#include "dataplane/http1/simd_scan.h"

namespace zproxy::http1::internal {
namespace {

enum class Known : uint8_t {
  kOther,
  kContentLength,
  kTransferEncoding,
  kHost,
  kConnection,
  kUpgrade,
  kExpect,
  kOtherHopByHop,  // Keep-Alive, Proxy-Connection, TE, Trailer
};

// Switch on length first: most names are rejected by one comparison of the size.
Known Classify(std::string_view n) {
  switch (n.size()) {
    case 2:
      return EqualsIgnoreCase(n, "te") ? Known::kOtherHopByHop : Known::kOther;
    case 4:
      return EqualsIgnoreCase(n, "host") ? Known::kHost : Known::kOther;
    case 6:
      return EqualsIgnoreCase(n, "expect") ? Known::kExpect : Known::kOther;
    case 7:
      if (EqualsIgnoreCase(n, "upgrade")) return Known::kUpgrade;
      return EqualsIgnoreCase(n, "trailer") ? Known::kOtherHopByHop : Known::kOther;
    case 10:
      if (EqualsIgnoreCase(n, "connection")) return Known::kConnection;
      return EqualsIgnoreCase(n, "keep-alive") ? Known::kOtherHopByHop : Known::kOther;
    case 14:
      return EqualsIgnoreCase(n, "content-length") ? Known::kContentLength : Known::kOther;
    case 16:
      return EqualsIgnoreCase(n, "proxy-connection") ? Known::kOtherHopByHop : Known::kOther;
    case 17:
      return EqualsIgnoreCase(n, "transfer-encoding") ? Known::kTransferEncoding : Known::kOther;
    default:
      return Known::kOther;
  }
}

// Content-Length = 1*DIGIT; anything else (sign, inner space, list, > 2^63-1) is refused
// rather than guessed at, since a proxy and its upstream must agree on the body's end.
bool ParseContentLength(std::string_view v, uint64_t* out) {
  if (v.empty()) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (!IsDigit(c)) return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (uint64_t{INT64_MAX} - d) / 10) return false;
    n = n * 10 + d;
  }
  *out = n;
  return true;
}

// Calls f(token) for each element of a comma-separated list, OWS trimmed, empty skipped.
template <typename F>
void ForEachListElement(std::string_view v, F f) {
  size_t i = 0;
  while (i <= v.size()) {
    size_t j = v.find(',', i);
    if (j == std::string_view::npos) j = v.size();
    std::string_view e = v.substr(i, j - i);
    while (!e.empty() && IsOws(e.front())) e.remove_prefix(1);
    while (!e.empty() && IsOws(e.back())) e.remove_suffix(1);
    if (!e.empty()) f(e);
    i = j + 1;
  }
}

Error ApplyField(const Header& h, size_t index, const FieldContext& ctx, FieldSummary* s) {
  switch (Classify(h.name)) {
    case Known::kOther:
      return Error::kNone;
    case Known::kContentLength:
      if (s->chunked) return Error::kContentLengthWithTransferEncoding;
      if (s->has_content_length) return Error::kDuplicateContentLength;
      if (!ParseContentLength(h.value, &s->content_length)) return Error::kBadContentLength;
      s->has_content_length = true;
      return Error::kNone;
    case Known::kTransferEncoding:
      SetBit(s->hop_by_hop, index);
      if (s->has_content_length) return Error::kContentLengthWithTransferEncoding;
      // Only a single "chunked": a second field, a list, or any other coding is exactly
      // what request smuggling is built from, and we do not decode other codings.
      if (s->chunked || ctx.version_minor == 0 || !EqualsIgnoreCase(h.value, "chunked")) {
        return Error::kBadTransferEncoding;
      }
      s->chunked = true;
      return Error::kNone;
    case Known::kHost:
      if (!ctx.is_request) return Error::kNone;
      if (s->has_host) return Error::kDuplicateHost;
      if (!IsValidAuthority(h.value, false)) return Error::kBadHost;
      s->has_host = true;
      s->host = h.value;
      return Error::kNone;
    case Known::kConnection:
      SetBit(s->hop_by_hop, index);
      s->has_connection = true;
      ForEachListElement(h.value, [s](std::string_view t) {
        if (EqualsIgnoreCase(t, "close")) s->conn_close = true;
        if (EqualsIgnoreCase(t, "keep-alive")) s->conn_keep_alive = true;
        if (EqualsIgnoreCase(t, "upgrade")) s->conn_upgrade = true;
      });
      return Error::kNone;
    case Known::kUpgrade:
      SetBit(s->hop_by_hop, index);
      s->has_upgrade = true;
      return Error::kNone;
    case Known::kExpect:
      if (EqualsIgnoreCase(h.value, "100-continue")) s->expect_continue = true;
      return Error::kNone;
    case Known::kOtherHopByHop:
      SetBit(s->hop_by_hop, index);
      return Error::kNone;
  }
  return Error::kNone;
}

}  // namespace

bool IsValidAuthority(std::string_view a, bool require_port) {
  size_t i = 0;
  if (!a.empty() && a[0] == '[') {
    // IP-literal: hex digits, ':' and '.' (IPv6, v4-mapped); IPvFuture is not supported.
    size_t close = a.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (size_t k = 1; k < close; k++) {
      char c = a[k];
      if (HexValue(c) < 0 && c != ':' && c != '.') return false;
    }
    i = close + 1;
  } else {
    // reg-name / IPv4: unreserved, pct-encoded and sub-delims.
    for (; i < a.size() && a[i] != ':'; i++) {
      char c = a[i];
      bool ok = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
      switch (c) {
        case '-':
        case '.':
        case '_':
        case '~':
        case '%':
        case '!':
        case '$':
        case '&':
        case '\'':
        case '(':
        case ')':
        case '*':
        case '+':
        case ',':
        case ';':
        case '=':
          ok = true;
          break;
        default:
          break;
      }
      if (!ok) return false;
    }
    if (i == 0 && require_port) return false;
  }
  if (i == a.size()) return !require_port;
  if (a[i] != ':') return false;
  std::string_view port = a.substr(i + 1);
  if (port.size() > 5 || (require_port && port.empty())) return false;
  for (char c : port) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

Status ParseFields(const char* p, const char* end, const FieldContext& ctx,
                   std::span<Header> storage, FieldSummary* s, const char** head_end,
                   Error* error) {
  auto fail = [error](Error e) {
    *error = e;
    return Status::kError;
  };
  for (;;) {
    if (p >= end) return Status::kNeedMore;
    char c = *p;
    if (c == '\r') {
      if (p + 1 >= end) return Status::kNeedMore;
      if (p[1] != '\n') return fail(Error::kBadHeaderName);
      *head_end = p + 2;
      return Status::kDone;
    }
    if (c == '\n') return fail(Error::kBareLf);
    // obs-fold; also whitespace between the start-line and the first field (RFC 9112
    // 2.2 allows rejecting it, and treating it as anything else invites smuggling).
    if (IsOws(c)) return fail(Error::kObsFold);

    const char* name = p;
    while (p < end && IsTchar(*p)) p++;
    if (p >= end) return Status::kNeedMore;
    if (*p != ':') return fail(*p == '\n' ? Error::kBareLf : Error::kBadHeaderName);
    if (p == name) return fail(Error::kBadHeaderName);
    std::string_view name_view(name, static_cast<size_t>(p - name));
    p++;

    while (p < end && IsOws(*p)) p++;
    const char* value = p;
    p = ScanFieldValue(p, end);
    if (p >= end) return Status::kNeedMore;
    if (*p == '\n') return fail(Error::kBareLf);
    if (*p != '\r') return fail(Error::kBadHeaderValue);
    if (p + 1 >= end) return Status::kNeedMore;
    if (p[1] != '\n') return fail(Error::kBadHeaderValue);  // bare CR
    const char* value_end = p;
    while (value_end > value && IsOws(value_end[-1])) value_end--;
    p += 2;

    if (s->count >= ctx.max_fields) return fail(Error::kTooManyHeaders);
    Header& h = storage[s->count];
    h.name = name_view;
    h.value = std::string_view(value, static_cast<size_t>(value_end - value));
    Error e = ApplyField(h, s->count, ctx, s);
    if (e != Error::kNone) return fail(e);
    s->count++;
  }
}

void MarkConnectionOptions(std::span<const Header> headers, FieldSummary* s) {
  if (!s->has_connection) return;
  for (size_t i = 0; i < headers.size(); i++) {
    if (!EqualsIgnoreCase(headers[i].name, "connection")) continue;
    ForEachListElement(headers[i].value, [&](std::string_view option) {
      if (EqualsIgnoreCase(option, "close") || EqualsIgnoreCase(option, "keep-alive") ||
          EqualsIgnoreCase(option, "upgrade") || EqualsIgnoreCase(option, "host") ||
          EqualsIgnoreCase(option, "content-length")) {
        return;  // already handled, or framing/routing the proxy must keep
      }
      for (size_t j = 0; j < headers.size(); j++) {
        if (EqualsIgnoreCase(headers[j].name, option)) SetBit(s->hop_by_hop, j);
      }
    });
  }
}

}  // namespace zproxy::http1::internal
