// The body of one HTTP/1 message as it arrives: how many of the received bytes belong
// to it and when it ends (Content-Length, chunked, close-delimited), incrementally and
// without copying. Chunked bodies come out either verbatim (chunk framing included, for
// an HTTP/1 peer that gets the same framing) or decoded (the data of the chunks only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dataplane/http/message.h"
#include "dataplane/http1/http1.h"

namespace zproxy::codec::http1 {

using zproxy::http1::Error;
using zproxy::http1::Status;

// One step of body decoding over the front of the input.
struct BodyStep {
  Status status = Status::kNeedMore;  // kDone: the body ended inside (or at the end of) input
  size_t consumed = 0;                // input bytes that belong to the body
  // What to pass on: the consumed bytes, or in decoded mode the chunk data among them
  // (a view into the input; may be empty when only framing was consumed).
  std::string_view data;
  // Decoded chunked bodies: trailer field lines consumed in this step ("Name: v\r\n"...),
  // for a peer that takes trailers separately (HTTP/2). A view into the input.
  std::string_view trailer;
  Error error = Error::kNone;
};

class BodyDecoder {
 public:
  // decode: chunked bodies yield their chunk data only (else verbatim).
  void Start(http::Body body, bool decode);
  // Feeds the front of the input. A decoded chunked body yields at most one run of chunk
  // data per call: call again on the unconsumed rest.
  BodyStep Feed(std::string_view in);
  // The sender closed: a close-delimited body is complete, any other is cut short.
  bool EndsAtClose() const { return framing_ == http::Framing::kUntilClose; }
  bool done() const { return done_; }
  http::Framing framing() const { return framing_; }
  bool decoding() const { return decode_ && framing_ == http::Framing::kChunked; }
  // Body data seen so far (chunk data for chunked bodies; bytes otherwise), for limits.
  uint64_t data_bytes() const;
  // Marks a close-delimited body complete (the sender's FIN).
  void FinishAtClose() { done_ = true; }

 private:
  http::Framing framing_ = http::Framing::kNone;
  bool decode_ = false;
  bool done_ = true;
  uint64_t remaining_ = 0;  // kLength
  uint64_t seen_ = 0;       // kLength / kUntilClose
  zproxy::http1::ChunkedScanner chunks_;
};

}  // namespace zproxy::codec::http1
