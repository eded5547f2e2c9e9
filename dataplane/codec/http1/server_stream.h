// The server side of the HTTP/1 codec: a client connection's bytes become protocol-
// neutral request heads and body data; neutral responses become HTTP/1 bytes.
//
// HTTP/1 serves one request at a time per connection (pipelined requests wait in the
// input, undecoded), so the codec's state for a connection is the state of its request
// in flight: a ServerStream, held only while there is one (an idle connection holds
// nothing). What HTTP/1 alone needs stays here: the version's rules (an HTTP/1.0 client
// gets no 1xx, no chunked framing, an explicit keep-alive), keep-alive, the request
// body's framing, the response's framing towards the client.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/codec/http1/body_decoder.h"
#include "dataplane/http/message.h"
#include "dataplane/http1/http1.h"

namespace zproxy::codec::http1 {

using zproxy::http1::Limits;

// A request head decoded from a client connection.
struct RequestHeadEvent {
  http::RequestHead head;
  size_t consumed = 0;     // bytes of the head, request line to the empty line
  bool keep_alive = true;  // the connection persists after this exchange (Connection, version)
  uint8_t version_minor = 1;
};

// Decodes a request head at the start of `in` (incremental: kNeedMore until the head is
// complete; call again with more). `storage` receives the fields; `scheme` is how the
// client reached us ("http"/"https"). Connection-specific fields are consumed here.
Status DecodeRequestHead(std::string_view in, const Limits& limits, std::span<http::Field> storage,
                         std::string_view scheme, RequestHeadEvent* out, Error* error);

// "METHOD target HTTP/1.x" (truncated to cap), for the access log.
std::string_view RequestLine(const http::RequestHead& head, char* out, size_t cap);

class ServerStream {
 public:
  // A request whose head was decoded; its body (if any) comes through request_body().
  void Begin(const RequestHeadEvent& ev);
  BodyDecoder& request_body() { return request_body_; }
  const BodyDecoder& request_body() const { return request_body_; }

  // Interim responses (1xx) reach HTTP/1.1 clients only: HTTP/1.0 cannot parse them.
  bool TakesInterim() const { return version_minor_ >= 1; }
  // Decides how the final response travels to the client and writes its head. `close`:
  // the proxy ends the connection after it (request body not read, draining, client
  // half-closed). HTTP/1 adds its own reasons: the client asked, the body is close-
  // delimited, or a chunked body to an HTTP/1.0 client (sent decoded, close-delimited).
  // Returns the head length, 0 if it did not fit in cap.
  size_t EncodeResponseHead(const http::ResponseHead& resp, bool close, char* out, size_t cap);
  // 1xx: the head as received (101 re-declares its upgrade). 0 if it did not fit.
  static size_t EncodeInterim(const http::ResponseHead& resp, char* out, size_t cap);

  // After EncodeResponseHead: the response's body goes out decoded (chunk data only).
  bool decode_response_body() const { return dechunk_; }
  // The response is framed by the close of the connection: a cut must be a reset.
  bool response_framed_by_close() const { return response_until_close_; }
  bool keep_alive() const { return keep_alive_; }
  void set_keep_alive(bool keep) { keep_alive_ = keep; }
  uint8_t version_minor() const { return version_minor_; }
  http::Method method() const { return method_; }

 private:
  BodyDecoder request_body_;
  http::Method method_ = http::Method::kOther;
  uint8_t version_minor_ = 1;
  bool keep_alive_ = true;
  bool dechunk_ = false;
  bool response_until_close_ = false;
};

// A complete response of the proxy's own (errors, 404): a short plain-text body naming
// the cause, with Retry-After when retry_after_s != 0. 0 if it did not fit.
size_t EncodeLocalResponse(int status, std::string_view body, bool close, char* out, size_t cap,
                           uint32_t retry_after_s = 0);

// One of zproxy's own answers with more to say: a route's redirect (Location) or direct
// response (its content type), Retry-After, response header changes.
struct LocalResponse {
  int status = 0;
  std::string_view body;
  std::string_view content_type;        // "" = text/plain when there is a body
  std::span<const http::Field> fields;  // more fields, written as given
  bool close = false;
  bool omit_body = false;      // HEAD: Content-Length says the body's size, none follows
  uint32_t retry_after_s = 0;  // != 0: Retry-After (429 rate limited)
};
size_t EncodeLocalResponse(const LocalResponse& r, char* out, size_t cap);
const char* StatusReason(int status);

}  // namespace zproxy::codec::http1
