// HTTP/1.1 message-head parser and chunked-body validator (RFC 9110/9112, strict).
//
// Contract used by the proxy core:
//  - Zero allocation, zero copy: every string_view points into the caller's buffer.
//  - Incremental: a head that is not complete yet returns kNeedMore (never an error just
//    because input stopped); the caller calls again with the same buffer extended.
//  - Strict: anything ambiguous is an error with a specific reason (smuggling defence):
//    CL+TE, duplicate/malformed Content-Length, unknown or obfuscated Transfer-Encoding,
//    obs-fold, bare LF, NUL/CR/LF in values, invalid token characters, HTTP/1.1 without
//    Host, bad chunk sizes/extensions.
//  - SIMD: the byte scans use AVX2 when the CPU has it, SSE2 otherwise (chosen once at
//    run time), with a scalar tail; results are identical on every path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/http/message.h"

namespace zproxy::http1 {

enum class Status : uint8_t {
  kDone,      // complete head parsed; *out filled; head_bytes consumed
  kNeedMore,  // input ends inside the head; not an error
  kError,     // malformed; see error
};

// Why a message was rejected. Stable names (ErrorName) label the
// zproxy_parser_rejections_total{reason=...} metric.
enum class Error : uint8_t {
  kNone = 0,
  kBadMethod,               // method is not a token
  kBadTarget,               // request-target has invalid bytes or is empty
  kBadVersion,              // not HTTP/1.0 or HTTP/1.1 syntax
  kUnsupportedVersion,      // HTTP/2.0 etc. on an HTTP/1 connection -> 505
  kBareLf,                  // LF not preceded by CR anywhere in the head
  kBadHeaderName,           // empty name, non-token byte, or whitespace before ':'
  kBadHeaderValue,          // NUL, bare CR, or other control bytes in a field value
  kObsFold,                 // line folding (continuation line starting with SP/HTAB)
  kBadContentLength,        // not 1*DIGIT, overflow, or several differing values
  kDuplicateContentLength,  // Content-Length given more than once
  kContentLengthWithTransferEncoding,
  kBadTransferEncoding,  // anything other than exactly "chunked" as the final coding
  kMissingHost,          // HTTP/1.1 request without Host
  kDuplicateHost,        // more than one Host field
  kRequestLineTooLong,   // -> 414
  kHeadersTooLarge,      // head larger than max_header_bytes -> 431
  kTooManyHeaders,       // more fields than the storage span / max_headers -> 431
  kBadStatusLine,        // responses: malformed status-line
  kBadChunkSize,         // chunk-size not HEXDIG, too large, or empty
  kBadChunkExtension,    // chunk-ext with invalid bytes
  kBadChunkTerminator,   // chunk data not followed by CRLF
  kBadTrailer,           // malformed trailer field
  kBadHost,              // Host (or the authority of the target) is not a valid authority
  kCount,
};

const char* ErrorName(Error e);  // e.g. "content_length_with_transfer_encoding"
int ErrorHttpStatus(Error e);    // 400, 414, 431 or 505

struct Limits {
  uint32_t max_request_line_bytes = 8192;
  uint32_t max_header_bytes = 65536;  // whole head, request-line included
  uint32_t max_headers = 100;
};

// The parser's fields and methods are the protocol-neutral ones (dataplane/http), so the
// codec hands them up without converting.
using Header = http::Field;

enum class BodyKind : uint8_t {
  kNone,            // no body (CL: 0, GET without framing, HEAD/204/304/1xx responses)
  kContentLength,   // exactly content_length bytes
  kChunked,         // Transfer-Encoding: chunked
  kCloseDelimited,  // responses only: body runs until the upstream closes
};

using Method = http::Method;

struct RequestHead {
  std::string_view method;
  Method method_id = Method::kOther;
  std::string_view target;  // request-target as received
  // Target up to '?' (origin-form); the path of absolute-form without its query ("/" when
  // the target has no path: then it is a static string, not a view into the input); the
  // target itself for authority-form (CONNECT) and asterisk-form ("*").
  std::string_view path;
  uint8_t version_minor = 1;  // HTTP/1.x
  std::span<Header> headers;  // subspan of the caller's storage
  // Host field value ("" for HTTP/1.0 without Host). For absolute-form targets this is
  // the target's authority instead (RFC 9112 3.2.2: the target wins over Host); for
  // CONNECT it is the authority-form target.
  std::string_view host;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;        // after Connection/version rules
  bool expect_continue = false;  // Expect: 100-continue
  bool upgrade = false;          // Connection: upgrade + Upgrade field present
  // Header indices that are hop-by-hop and must not be forwarded: the fixed list
  // (Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade)
  // plus every field named in Connection, except that Host and Content-Length are never
  // marked that way ("Connection: content-length" must not make the proxy strip the
  // framing of a body it forwards).
  // Bit i set => headers[i] is hop-by-hop. Supports up to 128 headers (max_headers <= 128;
  // larger values are treated as 128).
  uint64_t hop_by_hop[2] = {0, 0};
  size_t head_bytes = 0;  // bytes of the head including the final CRLFCRLF
};

struct ResponseHead {
  uint16_t status = 0;
  std::string_view reason;
  uint8_t version_minor = 1;
  std::span<Header> headers;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;  // upstream connection reusable after this response
  bool upgrade = false;    // Connection: upgrade + Upgrade field present (e.g. 101)
  uint64_t hop_by_hop[2] = {0, 0};
  size_t head_bytes = 0;
};

inline bool IsHopByHop(const uint64_t mask[2], size_t i) { return (mask[i >> 6] >> (i & 63)) & 1; }

// Parses a request head at the start of `buf`. `storage` receives the header fields
// (its size, capped by limits.max_headers, bounds the field count).
Status ParseRequest(std::string_view buf, const Limits& limits, std::span<Header> storage,
                    RequestHead* out, Error* error);

// Parses a response head. `request_method` and the status decide body framing
// (HEAD, 1xx, 204, 304 have none). `Limits` applies to the head size and field count.
Status ParseResponse(std::string_view buf, Method request_method, const Limits& limits,
                     std::span<Header> storage, ResponseHead* out, Error* error);

// Incremental validator for a chunked body. It does not decode: the proxy forwards the
// bytes verbatim, and this tells it where the body ends and rejects malformed framing.
class ChunkedScanner {
 public:
  // Scans `data`; sets *consumed to the bytes that belong to the body (all of `data`
  // unless the body ends inside it). Returns kDone when the last chunk and trailer
  // section (final CRLF) have been seen, kNeedMore to continue, kError with *error.
  Status Feed(std::string_view data, size_t* consumed, Error* error);
  // Like Feed, but stops after at most one run of chunk data and returns it in *payload
  // (a view into `data`), for de-chunking towards an HTTP/1.0 client. Call repeatedly
  // on the unconsumed rest.
  // *trailer (if given): the trailer field lines consumed in this call ("Name: v\r\n"...,
  // without the final CRLF), a view into `data`; empty when none.
  Status FeedDecoded(std::string_view data, size_t* consumed, std::string_view* payload,
                     Error* error, std::string_view* trailer = nullptr);
  // Total data bytes (sum of chunk sizes) seen so far, for body size limits.
  uint64_t data_bytes() const { return data_bytes_; }
  void Reset() { *this = ChunkedScanner(); }

 private:
  uint8_t state_ = 0;
  uint8_t size_digits_ = 0;
  uint64_t remaining_ = 0;  // chunk data bytes left in the current chunk
  uint64_t data_bytes_ = 0;
  uint32_t line_bytes_ = 0;     // bytes of the current chunk-size/trailer line (bounded)
  Error error_ = Error::kNone;  // sticky once kError was returned
};

// Longest chunk-size line (size + extensions) and trailer field line ChunkedScanner accepts.
inline constexpr uint32_t kMaxChunkLineBytes = 4096;

// Case-insensitive ASCII equality for header names.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// SIMD level picked at startup ("avx2", "sse2"); exposed for logs and tests.
const char* SimdLevel();
// Forces a level for tests ("avx2", "sse2", "scalar"); returns false if unsupported.
bool ForceSimdLevelForTesting(const char* level);

}  // namespace zproxy::http1
