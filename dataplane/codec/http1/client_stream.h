// The client side of the HTTP/1 codec: on an upstream connection, a neutral request
// becomes HTTP/1 bytes and the upstream's bytes become a neutral response head and body
// data. One request at a time per connection (HTTP/1 allows no more), so a connection's
// codec state is the state of its request in flight.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "dataplane/codec/http1/body_decoder.h"
#include "dataplane/http/message.h"
#include "dataplane/http1/http1.h"

namespace zproxy::codec::http1 {

// Writes the request head: origin-form target, Host from the head's authority, the
// end-to-end fields, then what HTTP/1 framing and the connection need (chunked framing
// re-declared, an upgrade re-declared, keep-alive asked for explicitly in HTTP/1.0).
// A request from an HTTP/1.0 client goes as HTTP/1.0, so the upstream never answers it
// chunked. Returns the head length, 0 if it did not fit in cap.
size_t EncodeRequestHead(const http::RequestHead& req, char* out, size_t cap);

struct ResponseHeadEvent {
  http::ResponseHead head;
  size_t consumed = 0;     // bytes of the head
  bool keep_alive = true;  // the upstream connection is reusable after this response
};

class ClientStream {
 public:
  // A request was sent: HEAD, and whether an upgrade was asked for, decide what
  // responses can follow.
  void Begin(http::Method method, bool upgrade_requested);
  // Decodes a response head at the start of `in` (kNeedMore until complete). A 101 that
  // does not answer an upgrade request is an error.
  Status DecodeResponseHead(std::string_view in, const zproxy::http1::Limits& limits,
                            std::span<http::Field> storage, ResponseHeadEvent* out, Error* error);
  // The final response's body follows; decode: chunked bodies yield their data only.
  void StartResponseBody(const ResponseHeadEvent& ev, bool decode);
  BodyDecoder& response_body() { return response_body_; }
  const BodyDecoder& response_body() const { return response_body_; }
  bool keep_alive() const { return keep_alive_; }

 private:
  BodyDecoder response_body_;
  http::Method method_ = http::Method::kOther;
  bool upgrade_requested_ = false;
  bool keep_alive_ = false;
};

}  // namespace zproxy::codec::http1
