// libFuzzer target for the client side of the HTTP/1 codec (dataplane/codec/http1/
// client_stream.h): an upstream's bytes as the proxy reads them after sending a request
// (response heads, 1xx, bodies of every framing, the next response on a kept connection),
// then the response re-encoded for the client (ServerStream::EncodeResponseHead) and
// re-parsed. Built by tools/fuzz-parser (clang, ASan + UBSan).
// Input: byte 0 = the request's method (bits 0-1: GET, HEAD, POST, CONNECT), whether it asked
// for an upgrade (bit 2), the client's HTTP version (bit 3), the piece seed (bits 4-7);
// byte 1 = limits seed; the rest = the upstream's bytes.
// Checks, besides memory safety:
//  - a prefix of a head gives kNeedMore or exactly the verdict of the whole;
//  - a decoded head's views point into the input, consumed <= input, fields are end to end;
//  - a 101 is only accepted for an upgrade request;
//  - the head the proxy writes for the client parses again, with the same status, the same
//    end-to-end fields in order and the framing the codec chose;
//  - the body decoded verbatim and decoded (fed in pieces) ends at the same byte.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dataplane/codec/http1/body_decoder.h"
#include "dataplane/codec/http1/client_stream.h"
#include "dataplane/codec/http1/head_fields.h"
#include "dataplane/codec/http1/server_stream.h"

namespace {

using namespace zproxy::codec::http1;
namespace h1 = zproxy::http1;
using zproxy::http::Field;
using zproxy::http::Framing;
using zproxy::http::Method;

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
  }
}

bool Inside(std::string_view v, std::string_view buf) {
  return v.empty() || (v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size());
}

bool IsConnectionSpecific(std::string_view name) {
  for (const char* n : {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade"}) {
    if (h1::EqualsIgnoreCase(name, n)) return true;
  }
  return false;
}

// Feeds a body through a fresh decoder in pieces; returns the bytes consumed and the verdict.
struct BodyRun {
  Status status = Status::kNeedMore;
  size_t consumed = 0;
};
BodyRun FeedBody(const ResponseHeadEvent& ev, bool decode, std::string_view in, size_t piece) {
  ClientStream cs;
  cs.StartResponseBody(ev, decode);
  BodyDecoder& d = cs.response_body();
  BodyRun r;
  if (d.done()) {
    r.status = Status::kDone;
    return r;
  }
  size_t off = 0;
  while (off < in.size()) {
    std::string_view part = in.substr(off, std::min(piece, in.size() - off));
    size_t used_here = 0;
    for (;;) {
      BodyStep s = d.Feed(part.substr(used_here));
      Check(s.consumed <= part.size() - used_here, "body consumed <= input");
      used_here += s.consumed;
      if (s.status != Status::kNeedMore) {
        r.status = s.status;
        r.consumed = off + used_here;
        return r;
      }
      if (used_here == part.size()) break;
      Check(s.consumed > 0, "body decoder makes progress");
    }
    off += part.size();
  }
  r.consumed = in.size();
  return r;
}

// The client-facing head of a final response parses again and keeps the fields.
void CheckReencoded(const ResponseHeadEvent& ev, Method method, uint8_t client_minor,
                    bool close) {
  RequestHeadEvent req_ev;
  req_ev.head.method_id = method;
  req_ev.version_minor = client_minor;
  req_ev.keep_alive = true;
  ServerStream ss;
  ss.Begin(req_ev);
  static char out[16384];
  size_t n = ss.EncodeResponseHead(ev.head, close, out, sizeof(out));
  if (n == 0) return;  // did not fit: the proxy answers 502 itself
  std::string_view wire(out, n);
  static Field storage[256];
  h1::Limits big;
  big.max_header_bytes = sizeof(out);
  big.max_headers = 128;
  h1::ResponseHead back;
  Error err = Error::kNone;
  Status st = h1::ParseResponse(wire, method, big, std::span<Field>(storage, 128), &back, &err);
  if (st == Status::kError && err == Error::kTooManyHeaders) return;
  if (st != Status::kDone) {
    fprintf(stderr, "re-encoded head: %.*s\nstatus %d error %s\n", static_cast<int>(n), out,
            static_cast<int>(st), h1::ErrorName(err));
  }
  Check(st == Status::kDone, "the proxy's response head parses");
  Check(back.head_bytes == n, "the whole head is one head");
  Check(back.status == ev.head.status, "status kept");
  // The end-to-end fields, in order, then only what the codec adds.
  size_t j = 0;
  for (size_t i = 0; i < back.headers.size(); i++) {
    const Field& f = back.headers[i];
    if (j < ev.head.fields.size() && f.name == ev.head.fields[j].name &&
        f.value == ev.head.fields[j].value) {
      j++;
      continue;
    }
    Check(IsConnectionSpecific(f.name), "only connection-specific fields are added");
  }
  Check(j == ev.head.fields.size(), "every end-to-end field kept in order");
  Framing want = ev.head.body.framing;
  if (ss.decode_response_body()) want = Framing::kUntilClose;
  Framing got = ToFraming(back.body);
  if (!(got == want || (want == Framing::kNone && got == Framing::kLength &&
                        back.content_length == 0))) {
    fprintf(stderr, "re-encoded head: %.*s\nframing %d -> %d\n", static_cast<int>(n), out,
            static_cast<int>(want), static_cast<int>(got));
  }
  Check(got == want || (want == Framing::kNone && got == Framing::kLength &&
                        back.content_length == 0),
        "the client sees the framing the codec chose");
  if (want == Framing::kLength) Check(back.content_length == ev.head.body.length, "length kept");
  if (ss.response_framed_by_close()) Check(!back.keep_alive, "close-framed response closes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t ctl = data[0], lim = data[1];
  static const Method kMethods[] = {Method::kGet, Method::kHead, Method::kPost, Method::kConnect};
  Method method = kMethods[ctl & 3];
  bool upgrade = ctl & 4;
  uint8_t client_minor = (ctl & 8) ? 0 : 1;
  size_t piece = 1 + (ctl >> 4) * 3;
  h1::Limits limits;
  if (lim & 1) {
    limits.max_header_bytes = 64 + lim * 8u;
    limits.max_headers = 1 + (lim >> 3);
  }
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  static Field storage[128];
  ClientStream cs;
  for (int exchange = 0; exchange < 8 && !in.empty(); exchange++) {
    cs.Begin(method, upgrade);
    ResponseHeadEvent ev;
    Error err = Error::kNone;
    Status st = cs.DecodeResponseHead(in, limits, storage, &ev, &err);
    // A prefix must wait or reach the same verdict.
    size_t split = (static_cast<size_t>(lim) * 131 + exchange) % (in.size() + 1);
    {
      ClientStream other;
      other.Begin(method, upgrade);
      static Field storage2[128];
      ResponseHeadEvent pev;
      Error perr = Error::kNone;
      Status pst = other.DecodeResponseHead(in.substr(0, split), limits, storage2, &pev, &perr);
      if (pst != Status::kNeedMore) {
        Check(pst == st, "prefix verdict == whole verdict");
        if (pst == Status::kError) Check(perr == err, "prefix error == whole error");
        if (pst == Status::kDone) Check(pev.consumed == ev.consumed, "prefix head length");
      }
    }
    if (st != Status::kDone) {
      if (st == Status::kError) Check(err != Error::kNone && err < Error::kCount, "error set");
      return 0;
    }
    Check(ev.consumed > 0 && ev.consumed <= in.size(), "head consumed within input");
    Check(Inside(ev.head.reason, in), "reason inside");
    for (const Field& f : ev.head.fields) {
      Check(Inside(f.name, in) && Inside(f.value, in), "field views inside");
      Check(!IsConnectionSpecific(f.name), "connection-specific fields removed");
    }
    if (ev.head.status == 101) Check(upgrade, "101 only after an upgrade request");
    std::string_view rest = in.substr(ev.consumed);
    if (ev.head.interim() && ev.head.status != 101) {
      char buf[16384];
      size_t n = ServerStream::EncodeInterim(ev.head, buf, sizeof(buf));
      if (n != 0) {
        h1::ResponseHead back;
        Error e2 = Error::kNone;
        static Field st2[256];
        h1::Limits big;
        big.max_header_bytes = sizeof(buf);
        big.max_headers = 128;
        Status s2 = h1::ParseResponse(std::string_view(buf, n), method, big,
                                      std::span<Field>(st2, 128), &back, &e2);
        Check(s2 == Status::kDone || e2 == Error::kTooManyHeaders, "interim head parses");
      }
      in = rest;  // the final response follows
      continue;
    }
    CheckReencoded(ev, method, client_minor, (ctl & 0x30) == 0x30);
    if (ev.head.status == 101) return 0;  // a tunnel follows, not HTTP
    BodyRun verb = FeedBody(ev, false, rest, piece);
    BodyRun dec = FeedBody(ev, true, rest, 1 + lim % 5);
    BodyRun whole = FeedBody(ev, false, rest, rest.size() + 1);
    Check(verb.status == dec.status && verb.status == whole.status, "body verdicts agree");
    if (verb.status != Status::kError) {
      Check(verb.consumed == dec.consumed && verb.consumed == whole.consumed, "body ends agree");
    }
    if (verb.status != Status::kDone) return 0;
    cs.StartResponseBody(ev, false);
    if (!cs.keep_alive()) return 0;
    in = rest.substr(verb.consumed);
  }
  return 0;
}
