// Protocol-neutral HTTP messages: what the proxy stream, routing and header policy see.
// Codecs (dataplane/codec/http1, later http2) turn wire bytes into these and back, so
// nothing above a codec knows whether a request came as HTTP/1.1 text or HTTP/2 frames
// (HAProxy's HTX and h2o's h2o_req_t play this role in those proxies).
//
// Everything is a view: strings point into the receive buffer the head was decoded from
// (or into static or caller-owned storage), nothing is allocated or copied. A head is
// only valid while that buffer is.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace zproxy::http {

enum class Method : uint8_t {
  kOther,
  kGet,
  kHead,
  kPost,
  kPut,
  kDelete,
  kConnect,
  kOptions,
  kTrace,
  kPatch
};

// The method token's id (kOther for extension methods); case-sensitive, as RFC 9110 says.
inline Method MethodFromToken(std::string_view m) {
  switch (m.size()) {
    case 3:
      if (m == "GET") return Method::kGet;
      if (m == "PUT") return Method::kPut;
      break;
    case 4:
      if (m == "POST") return Method::kPost;
      if (m == "HEAD") return Method::kHead;
      break;
    case 5:
      if (m == "PATCH") return Method::kPatch;
      if (m == "TRACE") return Method::kTrace;
      break;
    case 6:
      if (m == "DELETE") return Method::kDelete;
      break;
    case 7:
      if (m == "CONNECT") return Method::kConnect;
      if (m == "OPTIONS") return Method::kOptions;
      break;
    default:
      break;
  }
  return Method::kOther;
}

struct Field {
  std::string_view name;   // as received (case preserved; HTTP/2 sends lowercase)
  std::string_view value;  // OWS trimmed
};

// How a body is delimited where it came from. A codec that writes HTTP/1 keeps the
// sender's framing when it can (HAProxy's H1 fast-forward): a chunked body stays chunked
// and its bytes go out verbatim, a close-delimited one stays close-delimited.
enum class Framing : uint8_t {
  kNone,        // no body
  kLength,      // exactly `length` bytes
  kChunked,     // length unknown up front, ends with the last chunk (and trailers)
  kUntilClose,  // responses only: ends when the sender closes
};

struct Body {
  Framing framing = Framing::kNone;
  uint64_t length = 0;  // kLength only
  bool present() const { return framing != Framing::kNone; }
};

struct RequestHead {
  std::string_view method;  // token as received
  Method method_id = Method::kOther;
  std::string_view scheme;     // "http" or "https": how the client reached us
  std::string_view authority;  // Host / :authority; "" when the client sent none (HTTP/1.0)
  std::string_view target;     // as the client wrote it, for the access log
  std::string_view path;       // without the query: what routes match on
  // What goes upstream as the request target: path and query ("/a?b"), "*" for
  // OPTIONS *, the authority for CONNECT.
  std::string_view path_and_query;
  std::string_view protocol;  // "HTTP/1.1", "HTTP/1.0": the access log, version rules
  // End-to-end fields in order. Host and the connection-specific fields (Connection and
  // those it names, Keep-Alive, TE, Transfer-Encoding, Upgrade, ...) are not here: the
  // codec that received them consumed them.
  std::span<Field> fields;
  Body body;
  // The protocol the client asks to switch to (HTTP/1 Upgrade, later HTTP/2 :protocol);
  // "" when none.
  std::string_view upgrade;
  bool expect_continue = false;
};

struct ResponseHead {
  uint16_t status = 0;
  std::string_view reason;  // HTTP/1 only ("" from protocols without one)
  std::span<Field> fields;  // end-to-end fields, as for requests
  Body body;
  std::string_view upgrade;  // 101: the protocol switched to
  bool interim() const { return status >= 100 && status < 200; }
};

}  // namespace zproxy::http
