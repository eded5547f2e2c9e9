// libFuzzer target for the HTTP/1.1 parser. Built by tools/fuzz-parser (clang, outside
// Bazel). Checks, besides memory safety: head_bytes within the input, every view inside
// the input, a prefix gives kNeedMore or exactly the full result, the chunked scanner
// gives the same answer fed whole or split, and all SIMD levels agree.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "dataplane/http1/http1.h"

namespace {

using namespace zproxy::http1;

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
  }
}

bool Inside(std::string_view v, std::string_view buf) {
  return v.empty() || (v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size());
}

struct ReqOut {
  Status st;
  Error err;
  RequestHead head;
};

ReqOut Req(std::string_view buf, const Limits& l, Header* storage) {
  ReqOut o;
  o.err = Error::kNone;
  o.st = ParseRequest(buf, l, std::span<Header>(storage, 128), &o.head, &o.err);
  return o;
}

void CheckRequest(std::string_view buf, const Limits& limits, size_t split) {
  static Header storage[128];
  ReqOut full = Req(buf, limits, storage);
  if (full.st == Status::kDone) {
    const RequestHead& h = full.head;
    Check(h.head_bytes <= buf.size(), "request head_bytes <= size");
    Check(h.head_bytes <= limits.max_header_bytes, "request head within limit");
    Check(Inside(h.method, buf) && Inside(h.target, buf) && Inside(h.host, buf),
          "request views inside the buffer");
    Check(Inside(h.path, buf) || h.path == "/", "path inside the buffer");
    for (const Header& f : h.headers)
      Check(Inside(f.name, buf) && Inside(f.value, buf), "field views");
    Check(!h.method.empty() && !h.target.empty(), "non-empty method/target");
    Check(h.headers.size() <= limits.max_headers, "field count within limit");
    Check(h.body != BodyKind::kCloseDelimited, "requests are never close-delimited");
    // Re-parsing exactly the head gives the same answer.
    ReqOut again = Req(buf.substr(0, h.head_bytes), limits, storage);
    Check(again.st == Status::kDone && again.head.head_bytes == h.head_bytes, "head alone");
  } else if (full.st == Status::kError) {
    Check(full.err != Error::kNone && full.err < Error::kCount, "error set");
  }
  // A prefix knows less: it must wait, or already reach exactly the same verdict.
  ReqOut part = Req(buf.substr(0, split), limits, storage);
  if (part.st != Status::kNeedMore) {
    Check(part.st == full.st, "prefix status == full status");
    if (part.st == Status::kError) Check(part.err == full.err, "prefix error == full error");
    if (part.st == Status::kDone)
      Check(part.head.head_bytes == full.head.head_bytes, "prefix done");
  }
  // Re-parse to leave `storage` matching `full` is unnecessary: results are compared above.
}

void CheckResponse(std::string_view buf, Method m, const Limits& limits, size_t split) {
  static Header storage[128];
  ResponseHead full, part;
  Error e1 = Error::kNone, e2 = Error::kNone;
  Status s1 = ParseResponse(buf, m, limits, std::span<Header>(storage, 128), &full, &e1);
  if (s1 == Status::kDone) {
    Check(full.head_bytes <= buf.size(), "response head_bytes <= size");
    Check(Inside(full.reason, buf), "reason inside");
    for (const Header& f : full.headers)
      Check(Inside(f.name, buf) && Inside(f.value, buf), "fields");
    Check(full.status >= 100 && full.status <= 999, "status range");
    if (full.body == BodyKind::kCloseDelimited) Check(!full.keep_alive, "close-delimited closes");
  }
  Status s2 =
      ParseResponse(buf.substr(0, split), m, limits, std::span<Header>(storage, 128), &part, &e2);
  if (s2 != Status::kNeedMore) {
    Check(s2 == s1, "response prefix status");
    if (s2 == Status::kError) Check(e2 == e1, "response prefix error");
  }
}

void CheckChunked(std::string_view buf, size_t split) {
  ChunkedScanner whole;
  size_t used = 0;
  Error e1 = Error::kNone;
  Status s1 = whole.Feed(buf, &used, &e1);
  Check(used <= buf.size(), "chunked consumed <= size");
  if (s1 == Status::kNeedMore) Check(used == buf.size(), "need-more consumes everything");

  ChunkedScanner two;
  size_t u1 = 0, u2 = 0;
  Error e2 = Error::kNone;
  Status s2 = two.Feed(buf.substr(0, split), &u1, &e2);
  if (s2 == Status::kNeedMore) {
    s2 = two.Feed(buf.substr(split), &u2, &e2);
    u1 += u2;
  }
  Check(s1 == s2, "chunked split status");
  if (s1 == Status::kDone) Check(used == u1, "chunked split consumed");
  if (s1 == Status::kError) Check(e1 == e2, "chunked split error");
  if (s1 != Status::kError) Check(whole.data_bytes() == two.data_bytes(), "chunked data bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // First two bytes pick the split point and the limits; the rest is the message.
  const uint8_t ctl0 = data[0], ctl1 = data[1];
  std::string_view buf(reinterpret_cast<const char*>(data + 2), size - 2);
  size_t split = buf.empty() ? 0 : (static_cast<size_t>(ctl0) * 257 + ctl1) % (buf.size() + 1);
  Limits limits;
  if (ctl1 & 1) {
    limits.max_request_line_bytes = 16 + ctl0;
    limits.max_header_bytes = 64 + ctl0 * 4u;
    limits.max_headers = 1 + (ctl1 >> 4);
  }
  static const char* kLevels[] = {"scalar", "sse2", "avx2"};
  RequestHead ref;
  Error ref_err = Error::kNone;
  Status ref_st = Status::kNeedMore;
  static Header storage[128];
  bool have_ref = false;
  for (const char* level : kLevels) {
    if (!ForceSimdLevelForTesting(level)) continue;
    RequestHead h;
    Error e = Error::kNone;
    Status st = ParseRequest(buf, limits, std::span<Header>(storage, 128), &h, &e);
    if (!have_ref) {
      ref = h;
      ref_err = e;
      ref_st = st;
      have_ref = true;
    } else {
      Check(st == ref_st && e == ref_err && h.head_bytes == ref.head_bytes &&
                h.headers.size() == ref.headers.size() && h.body == ref.body,
            "SIMD levels agree");
    }
  }
  CheckRequest(buf, limits, split);
  CheckResponse(buf, (ctl0 & 1) ? Method::kHead : Method::kGet, limits, split);
  CheckChunked(buf, split);
  return 0;
}
