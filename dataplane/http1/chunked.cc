// Chunked transfer coding validator (RFC 9112 7.1): a byte-at-a-time state machine, with
// chunk data skipped in bulk. It never buffers: every call may end anywhere.
#include <algorithm>

#include "dataplane/http1/chars.h"
#include "dataplane/http1/http1.h"

namespace zproxy::http1 {
namespace {

using internal::HexValue;
using internal::IsOws;
using internal::IsTchar;
using internal::IsValueByte;

enum State : uint8_t {
  kSizeStart,      // expecting the first hex digit of chunk-size
  kSize,           // in chunk-size
  kExtBws,         // whitespace after size or a value: only more BWS or ';' may follow
  kExtAfterQuote,  // after a quoted value's closing quote: ';', CR or BWS
  kExtNameStart,   // after ';' (BWS allowed), expecting a token
  kExtName,        // in chunk-ext-name
  kExtAfterName,   // BWS after the name: '=', ';' or CR
  kExtValueStart,  // after '=' (BWS allowed): token or quoted-string
  kExtValueToken,  // in a token value
  kExtQuoted,      // in a quoted-string
  kExtQuotedPair,  // after '\' in a quoted-string
  kSizeLf,         // CR seen at the end of the size line
  kData,           // remaining_ bytes of chunk data
  kDataCr,         // expecting CR after data
  kDataLf,         // expecting LF after data
  kTrailerStart,   // start of a trailer line (or the final CRLF)
  kTrailerName,    // in a trailer field name
  kTrailerValue,   // in a trailer field value
  kTrailerLf,      // CR seen at the end of a trailer field line
  kFinalLf,        // CR of the final empty line seen
  kDone,
  kFailed,
};

bool IsQdtext(unsigned char c) {
  return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) ||
         (c >= 0x5D && c <= 0x7E) || c >= 0x80;
}

}  // namespace

Status ChunkedScanner::Feed(std::string_view data, size_t* consumed, Error* error) {
  *consumed = 0;
  if (state_ == kDone) return Status::kDone;
  if (state_ == kFailed) {
    *error = error_;
    return Status::kError;
  }
  auto fail = [&](Error e, size_t at) {
    state_ = kFailed;
    error_ = e;
    *error = e;
    *consumed = at;
    return Status::kError;
  };
  const char* p = data.data();
  const size_t n = data.size();
  size_t i = 0;
  while (i < n) {
    if (state_ == kData) {
      uint64_t take = std::min<uint64_t>(remaining_, n - i);
      remaining_ -= take;
      i += static_cast<size_t>(take);
      if (remaining_ == 0) state_ = kDataCr;
      continue;
    }
    const unsigned char c = static_cast<unsigned char>(p[i]);
    // Size lines and trailer lines are bounded so a peer cannot make us scan forever
    // without ever producing body bytes.
    if (state_ < kSizeLf || (state_ >= kTrailerStart && state_ <= kTrailerLf)) {
      if (++line_bytes_ > kMaxChunkLineBytes) {
        if (state_ >= kTrailerStart) return fail(Error::kBadTrailer, i);
        return fail(state_ <= kSize ? Error::kBadChunkSize : Error::kBadChunkExtension, i);
      }
    }
    switch (state_) {
      case kSizeStart:
      case kSize: {
        int v = HexValue(static_cast<char>(c));
        if (v >= 0) {
          if (++size_digits_ > 16) return fail(Error::kBadChunkSize, i);
          remaining_ = (remaining_ << 4) | static_cast<uint64_t>(v);
          state_ = kSize;
        } else if (state_ == kSizeStart) {
          return fail(Error::kBadChunkSize, i);
        } else if (c == '\r') {
          state_ = kSizeLf;
        } else if (c == ';') {
          state_ = kExtNameStart;
        } else if (IsOws(static_cast<char>(c))) {
          state_ = kExtBws;
        } else {
          return fail(Error::kBadChunkSize, i);
        }
        break;
      }
      case kExtBws:
        // Whitespace is only allowed before a ';' (the BWS of chunk-ext), never before CR.
        if (c == ';') {
          state_ = kExtNameStart;
        } else if (!IsOws(static_cast<char>(c))) {
          return fail(Error::kBadChunkExtension, i);
        }
        break;
      case kExtAfterQuote:
        if (c == ';') {
          state_ = kExtNameStart;
        } else if (c == '\r') {
          state_ = kSizeLf;
        } else if (IsOws(static_cast<char>(c))) {
          state_ = kExtBws;
        } else {
          return fail(Error::kBadChunkExtension, i);
        }
        break;
      case kExtNameStart:
        if (IsTchar(static_cast<char>(c))) {
          state_ = kExtName;
        } else if (!IsOws(static_cast<char>(c))) {
          return fail(Error::kBadChunkExtension, i);
        }
        break;
      case kExtName:
      case kExtAfterName:
        if (state_ == kExtName && IsTchar(static_cast<char>(c))) break;
        if (c == '=') {
          state_ = kExtValueStart;
        } else if (c == ';') {
          state_ = kExtNameStart;
        } else if (c == '\r' && state_ == kExtName) {
          state_ = kSizeLf;
        } else if (IsOws(static_cast<char>(c))) {
          state_ = kExtAfterName;
        } else {
          return fail(Error::kBadChunkExtension, i);
        }
        break;
      case kExtValueStart:
        if (c == '"') {
          state_ = kExtQuoted;
        } else if (IsTchar(static_cast<char>(c))) {
          state_ = kExtValueToken;
        } else if (!IsOws(static_cast<char>(c))) {
          return fail(Error::kBadChunkExtension, i);
        }
        break;
      case kExtValueToken:
        if (IsTchar(static_cast<char>(c))) break;
        if (c == ';') {
          state_ = kExtNameStart;
        } else if (c == '\r') {
          state_ = kSizeLf;
        } else if (IsOws(static_cast<char>(c))) {
          state_ = kExtBws;
        } else {
          return fail(Error::kBadChunkExtension, i);
        }
        break;
      case kExtQuoted:
        if (c == '"') {
          state_ = kExtAfterQuote;
        } else if (c == '\\') {
          state_ = kExtQuotedPair;
        } else if (!IsQdtext(c)) {
          return fail(Error::kBadChunkExtension, i);
        }
        break;
      case kExtQuotedPair:
        if (!IsValueByte(static_cast<char>(c))) return fail(Error::kBadChunkExtension, i);
        state_ = kExtQuoted;
        break;
      case kSizeLf:
        if (c != '\n') return fail(Error::kBadChunkSize, i);
        line_bytes_ = 0;
        size_digits_ = 0;
        if (remaining_ == 0) {
          state_ = kTrailerStart;
        } else {
          if (data_bytes_ + remaining_ < data_bytes_) return fail(Error::kBadChunkSize, i);
          data_bytes_ += remaining_;
          state_ = kData;
        }
        break;
      case kDataCr:
        if (c != '\r') return fail(Error::kBadChunkTerminator, i);
        state_ = kDataLf;
        break;
      case kDataLf:
        if (c != '\n') return fail(Error::kBadChunkTerminator, i);
        state_ = kSizeStart;
        break;
      case kTrailerStart:
        if (c == '\r') {
          state_ = kFinalLf;
        } else if (IsTchar(static_cast<char>(c))) {
          state_ = kTrailerName;
        } else {
          return fail(Error::kBadTrailer, i);  // includes obs-fold and bare LF
        }
        break;
      case kTrailerName:
        if (c == ':') {
          state_ = kTrailerValue;
        } else if (!IsTchar(static_cast<char>(c))) {
          return fail(Error::kBadTrailer, i);
        }
        break;
      case kTrailerValue:
        if (c == '\r') {
          state_ = kTrailerLf;
        } else if (!IsValueByte(static_cast<char>(c))) {
          return fail(Error::kBadTrailer, i);
        }
        break;
      case kTrailerLf:
        if (c != '\n') return fail(Error::kBadTrailer, i);
        line_bytes_ = 0;
        state_ = kTrailerStart;
        break;
      case kFinalLf:
        if (c != '\n') return fail(Error::kBadTrailer, i);
        state_ = kDone;
        *consumed = i + 1;
        return Status::kDone;
      default:
        return fail(Error::kBadChunkSize, i);
    }
    i++;
  }
  *consumed = n;
  return Status::kNeedMore;
}

Status ChunkedScanner::FeedDecoded(std::string_view data, size_t* consumed,
                                   std::string_view* payload, Error* error,
                                   std::string_view* trailer) {
  *payload = {};
  if (trailer != nullptr) *trailer = {};
  size_t t_begin = 0, t_end = 0;  // trailer lines fed in this call
  size_t used = 0;
  while (used < data.size()) {
    size_t c = 0;
    if (state_ == kData) {
      size_t take = static_cast<size_t>(std::min<uint64_t>(remaining_, data.size() - used));
      *payload = data.substr(used, take);
      Status st = Feed(data.substr(used, take), &c, error);
      *consumed = used + c;
      return st;
    }
    // Framing bytes (size lines, CRLFs, trailers) are few: one at a time keeps this
    // a thin layer over Feed. A trailer line's bytes (not the final CRLF) are noted.
    bool in_trailer = (state_ >= kTrailerName && state_ <= kTrailerLf) ||
                      (state_ == kTrailerStart && data[used] != '\r');
    Status st = Feed(data.substr(used, 1), &c, error);
    if (in_trailer && c == 1 && st != Status::kError && trailer != nullptr) {
      if (t_end != used) t_begin = used;  // (contiguous within one call)
      t_end = used + 1;
      *trailer = data.substr(t_begin, t_end - t_begin);
    }
    used += c;
    if (st != Status::kNeedMore) {
      *consumed = used;
      return st;
    }
  }
  *consumed = used;
  return Status::kNeedMore;
}

}  // namespace zproxy::http1
