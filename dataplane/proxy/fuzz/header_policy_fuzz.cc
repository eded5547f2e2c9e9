// libFuzzer target for the proxy's header policy (dataplane/proxy/header_policy.h) on the
// HTTP/1 path: a client's request decoded by the codec (DecodeRequestHead), the policy
// applied (X-Forwarded-*, Host rewrite, fallback authority), the upstream request written
// (EncodeRequestHead) and parsed again with the strict parser. Built by tools/fuzz-parser.
// Input: byte 0 = policy choice (host rewrite, fallback, client address, add_forwarded,
// scheme), byte 1 = split seed, the rest = the client's bytes.
// Checks, besides memory safety:
//  - what the proxy sends upstream always parses (kDone, one head of exactly the written
//    length), with the method, the origin-form target, the authority as Host and the body
//    framing of the request;
//  - every field the policy kept reaches the upstream, in order, and the upstream sees
//    exactly one X-Forwarded-For (ending in the client address), -Proto (the scheme) and
//    -Host (the client's authority) when the policy adds them, none of the client's own
//    X-Forwarded-Proto/-Host;
//  - a prefix of the client's head decodes to kNeedMore or the same verdict.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dataplane/codec/http1/client_stream.h"
#include "dataplane/codec/http1/server_stream.h"
#include "dataplane/proxy/header_policy.h"

namespace {

using namespace zproxy;
namespace h1 = zproxy::http1;
using http::Field;

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
  }
}

// Values the config validation lets through (host patterns without wildcards, IP text the
// worker formats).
const char* const kRewrites[] = {"", "api.internal", "up.example.com:8080", "[::1]:9000"};
const char* const kFallbacks[] = {"cluster-a", "10.0.0.1:3000"};
const char* const kClientIps[] = {"", "10.0.0.7", "2001:db8::1", "127.0.0.1"};

size_t CountNamed(std::span<const Field> fields, std::string_view name) {
  size_t n = 0;
  for (const Field& f : fields) n += h1::EqualsIgnoreCase(f.name, name);
  return n;
}

const Field* FindNamed(std::span<const Field> fields, std::string_view name) {
  for (const Field& f : fields)
    if (h1::EqualsIgnoreCase(f.name, name)) return &f;
  return nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t ctl = data[0], ctl1 = data[1];
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  proxy::RequestPolicy policy;
  policy.host_rewrite = kRewrites[ctl & 3];
  policy.fallback_host = kFallbacks[(ctl >> 2) & 1];
  policy.client_ip = kClientIps[(ctl >> 3) & 3];
  policy.add_forwarded = !(ctl & 0x20);
  std::string_view scheme = (ctl & 0x40) ? "https" : "http";
  bool forward_upgrade = ctl & 0x80;

  static Field storage[128];
  codec::http1::RequestHeadEvent ev;
  h1::Error err = h1::Error::kNone;
  h1::Limits limits;
  h1::Status st = codec::http1::DecodeRequestHead(in, limits, storage, scheme, &ev, &err);
  {
    static Field storage2[128];
    codec::http1::RequestHeadEvent pev;
    h1::Error perr = h1::Error::kNone;
    size_t split = (static_cast<size_t>(ctl1) * 257 + ctl) % (in.size() + 1);
    h1::Status pst =
        codec::http1::DecodeRequestHead(in.substr(0, split), limits, storage2, scheme, &pev, &perr);
    if (pst != h1::Status::kNeedMore) {
      Check(pst == st && perr == err, "prefix verdict == whole verdict");
    }
  }
  if (st != h1::Status::kDone) return 0;

  http::RequestHead& req = ev.head;
  const std::string_view client_authority = req.authority;
  const std::string client_xff_last = [&] {
    std::string s;
    for (const Field& f : req.fields)
      if (h1::EqualsIgnoreCase(f.name, "x-forwarded-for") && !f.value.empty()) s = f.value;
    return s;
  }();
  static Field out_fields[128 + proxy::kPolicyExtraFields];
  static char scratch[8192];
  std::span<char> scratch_span(scratch, ctl1 & 1 ? 64 : sizeof(scratch));
  if (!proxy::ApplyRequestPolicy(policy, std::span<Field>(out_fields), scratch_span, &req)) {
    Check(!policy.client_ip.empty() && policy.add_forwarded, "only the XFF merge can fail");
    return 0;
  }
  if (!forward_upgrade) req.upgrade = {};
  // Authority: the rewrite, else the client's, else the fallback.
  if (!policy.host_rewrite.empty()) {
    Check(req.authority == policy.host_rewrite, "host rewrite applied");
  } else if (!client_authority.empty()) {
    Check(req.authority == client_authority, "client authority kept");
  } else {
    Check(req.authority == policy.fallback_host, "fallback authority");
  }
  if (policy.add_forwarded) {
    Check(CountNamed(req.fields, "x-forwarded-proto") == 1, "one X-Forwarded-Proto");
    Check(FindNamed(req.fields, "x-forwarded-proto")->value == scheme, "X-Forwarded-Proto value");
    Check(CountNamed(req.fields, "x-forwarded-host") == (client_authority.empty() ? 0u : 1u),
          "X-Forwarded-Host iff the client sent an authority");
    if (!policy.client_ip.empty()) {
      Check(CountNamed(req.fields, "x-forwarded-for") == 1, "one X-Forwarded-For");
      std::string_view xff = FindNamed(req.fields, "x-forwarded-for")->value;
      Check(xff.size() >= policy.client_ip.size() &&
                xff.substr(xff.size() - policy.client_ip.size()) == policy.client_ip,
            "X-Forwarded-For ends with the client address");
      if (!client_xff_last.empty())
        Check(xff.find(client_xff_last) != std::string_view::npos, "client XFF values kept");
    }
  }

  static char out[32768];
  size_t n = codec::http1::EncodeRequestHead(req, out, sizeof(out));
  Check(n != 0, "the upstream head fits (inputs are small)");
  std::string_view wire(out, n);

  static Field back_storage[160];
  h1::Limits big;
  big.max_request_line_bytes = sizeof(out);
  big.max_header_bytes = sizeof(out);
  big.max_headers = 128;
  h1::RequestHead back;
  h1::Error berr = h1::Error::kNone;
  h1::Status bst = h1::ParseRequest(wire, big, std::span<Field>(back_storage, 128), &back, &berr);
  if (bst == h1::Status::kError && berr == h1::Error::kTooManyHeaders) return 0;
  if (bst != h1::Status::kDone) {
    fprintf(stderr, "client sent:\n%.*s\nupstream gets:\n%.*s\nstatus %d error %s\n",
            static_cast<int>(ev.consumed), in.data(), static_cast<int>(n), out,
            static_cast<int>(bst), h1::ErrorName(berr));
  }
  Check(bst == h1::Status::kDone, "the upstream request parses");
  Check(back.head_bytes == n, "exactly one head");
  Check(back.method == req.method, "method kept");
  Check(back.host == req.authority || back.method_id == http::Method::kConnect,
        "Host is the authority");
  std::string want_target(req.path_and_query);
  if (!want_target.empty() && want_target.front() == '?') want_target.insert(0, "/");
  Check(back.target == want_target, "origin-form target");
  Check(back.body == (req.body.framing == http::Framing::kChunked   ? h1::BodyKind::kChunked
                      : req.body.framing == http::Framing::kLength ? h1::BodyKind::kContentLength
                                                                    : h1::BodyKind::kNone) ||
            (req.body.framing == http::Framing::kNone && back.body == h1::BodyKind::kContentLength &&
             back.content_length == 0),
        "body framing kept");
  if (req.body.framing == http::Framing::kLength)
    Check(back.content_length == req.body.length, "Content-Length kept");
  // The fields the policy produced, in order, among the upstream's (after Host; the codec
  // adds only framing and connection fields).
  size_t j = 0;
  for (const Field& f : back.headers) {
    if (j < req.fields.size() && f.name == req.fields[j].name && f.value == req.fields[j].value) {
      j++;
    }
  }
  if (j != req.fields.size()) {
    fprintf(stderr, "upstream gets:\n%.*s\nlost field %zu: %.*s\n", static_cast<int>(n), out, j,
            static_cast<int>(req.fields[j].name.size()), req.fields[j].name.data());
  }
  Check(j == req.fields.size(), "every field kept, in order");
  return 0;
}
