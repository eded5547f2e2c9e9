#include "dataplane/http1/http1.h"

namespace zproxy::http1 {

const char* ErrorName(Error e) {
  switch (e) {
    case Error::kNone:
      return "none";
    case Error::kBadMethod:
      return "bad_method";
    case Error::kBadTarget:
      return "bad_target";
    case Error::kBadVersion:
      return "bad_version";
    case Error::kUnsupportedVersion:
      return "unsupported_version";
    case Error::kBareLf:
      return "bare_lf";
    case Error::kBadHeaderName:
      return "bad_header_name";
    case Error::kBadHeaderValue:
      return "bad_header_value";
    case Error::kObsFold:
      return "obs_fold";
    case Error::kBadContentLength:
      return "bad_content_length";
    case Error::kDuplicateContentLength:
      return "duplicate_content_length";
    case Error::kContentLengthWithTransferEncoding:
      return "content_length_with_transfer_encoding";
    case Error::kBadTransferEncoding:
      return "bad_transfer_encoding";
    case Error::kMissingHost:
      return "missing_host";
    case Error::kDuplicateHost:
      return "duplicate_host";
    case Error::kRequestLineTooLong:
      return "request_line_too_long";
    case Error::kHeadersTooLarge:
      return "headers_too_large";
    case Error::kTooManyHeaders:
      return "too_many_headers";
    case Error::kBadStatusLine:
      return "bad_status_line";
    case Error::kBadChunkSize:
      return "bad_chunk_size";
    case Error::kBadChunkExtension:
      return "bad_chunk_extension";
    case Error::kBadChunkTerminator:
      return "bad_chunk_terminator";
    case Error::kBadTrailer:
      return "bad_trailer";
    case Error::kBadHost:
      return "bad_host";
    case Error::kCount:
      break;
  }
  return "unknown";
}

int ErrorHttpStatus(Error e) {
  switch (e) {
    case Error::kRequestLineTooLong:
      return 414;
    case Error::kHeadersTooLarge:
    case Error::kTooManyHeaders:
      return 431;
    case Error::kUnsupportedVersion:
      return 505;
    default:
      return 400;
  }
}

}  // namespace zproxy::http1
