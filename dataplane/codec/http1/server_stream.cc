#include "dataplane/codec/http1/server_stream.h"

#include <algorithm>
#include <cstdio>

#include "dataplane/codec/http1/head_fields.h"
#include "dataplane/codec/http1/writer.h"

namespace zproxy::codec::http1 {

namespace {
// The request-target sent upstream is origin-form: absolute-form ("http://h/p?q") is
// reduced to its path and query (RFC 9112 §3.2.2). An empty path is "/", except for an
// OPTIONS with neither path nor query, which goes on as "*" (RFC 9112 §3.2.4: the last
// proxy turns it into the asterisk-form). "http://h?q" gives "?q": the encoders write
// the "/" in front (there is no "/" in the input to point at).
std::string_view OriginForm(const zproxy::http1::RequestHead& req) {
  std::string_view t = req.target;
  if (!t.empty() && t.front() != '/' && t != "*") {
    size_t scheme = t.find("://");
    if (scheme != std::string_view::npos) {
      size_t end = t.find_first_of("/?", scheme + 3);
      if (end == std::string_view::npos) {
        return req.method_id == zproxy::http1::Method::kOptions ? "*" : "/";
      }
      return t.substr(end);
    }
  }
  return t;
}
}  // namespace

Status DecodeRequestHead(std::string_view in, const Limits& limits, std::span<http::Field> storage,
                         std::string_view scheme, RequestHeadEvent* out, Error* error) {
  zproxy::http1::RequestHead req;
  Status st = zproxy::http1::ParseRequest(in, limits, storage, &req, error);
  if (st != Status::kDone) return st;
  http::RequestHead& h = out->head;
  h.method = req.method;
  h.method_id = req.method_id;
  h.scheme = scheme;
  h.authority = req.host;
  h.target = req.target;
  h.path = req.path;
  h.path_and_query = OriginForm(req);
  h.protocol = req.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
  h.upgrade = req.upgrade ? UpgradeValue(req.headers) : std::string_view();
  h.fields = EndToEndFields(req.headers, req.hop_by_hop, /*drop_host=*/true);
  h.body.framing = ToFraming(req.body);
  h.body.length = req.content_length;
  h.expect_continue = req.expect_continue;
  out->consumed = req.head_bytes;
  out->keep_alive = req.keep_alive;
  out->version_minor = req.version_minor;
  return Status::kDone;
}

std::string_view RequestLine(const http::RequestHead& head, char* out, size_t cap) {
  int n = snprintf(out, cap, "%.*s %.*s %.*s", static_cast<int>(head.method.size()),
                   head.method.data(), static_cast<int>(head.target.size()), head.target.data(),
                   static_cast<int>(head.protocol.size()), head.protocol.data());
  return std::string_view(out, n < 0 ? 0 : std::min<size_t>(static_cast<size_t>(n), cap - 1));
}

void ServerStream::Begin(const RequestHeadEvent& ev) {
  method_ = ev.head.method_id;
  version_minor_ = ev.version_minor;
  keep_alive_ = ev.keep_alive;
  dechunk_ = false;
  response_until_close_ = false;
  // Request bodies are forwarded as they came: an HTTP/1 upstream gets the same framing.
  request_body_.Start(ev.head.body, /*decode=*/false);
}

size_t ServerStream::EncodeInterim(const http::ResponseHead& resp, char* out, size_t cap) {
  Writer w(out, cap);
  WriteStatusLine(w, resp);
  WriteFields(w, resp.fields);
  if (resp.status == 101 && !resp.upgrade.empty()) WriteUpgrade(w, resp.upgrade);
  w.Put("\r\n");
  return w.Result();
}

size_t ServerStream::EncodeResponseHead(const http::ResponseHead& resp, bool close, char* out,
                                        size_t cap) {
  // An HTTP/1.0 client cannot parse chunked framing: it gets the data, close-delimited.
  dechunk_ = version_minor_ == 0 && resp.body.framing == http::Framing::kChunked;
  response_until_close_ = dechunk_ || resp.body.framing == http::Framing::kUntilClose;
  close = close || !keep_alive_ || response_until_close_;
  keep_alive_ = !close;
  Writer w(out, cap);
  WriteStatusLine(w, resp);
  WriteFields(w, resp.fields);
  if (resp.body.framing == http::Framing::kChunked && !dechunk_) {
    w.Put("Transfer-Encoding: chunked\r\n");
  }
  if (close) {
    w.Put("Connection: close\r\n");
  } else if (version_minor_ == 0) {
    w.Put("Connection: keep-alive\r\n");
  }
  w.Put("\r\n");
  return w.Result();
}

const char* StatusReason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 401:
      return "Unauthorized";
    case 405:
      return "Method Not Allowed";
    case 410:
      return "Gone";
    case 429:
      return "Too Many Requests";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
  }
  return status < 400 ? "Status" : "Error";
}

size_t EncodeLocalResponse(const LocalResponse& r, char* out, size_t cap) {
  Writer w(out, cap);
  w.Put("HTTP/1.1 ");
  w.PutUint(static_cast<uint64_t>(r.status));
  w.Put(" ");
  w.Put(StatusReason(r.status));
  w.Put("\r\n");
  if (!r.body.empty() || !r.content_type.empty()) {
    w.Put("Content-Type: ");
    w.Put(r.content_type.empty() ? std::string_view("text/plain") : r.content_type);
    w.Put("\r\n");
  }
  for (const http::Field& f : r.fields) {
    w.Put(f.name);
    w.Put(": ");
    w.Put(f.value);
    w.Put("\r\n");
  }
  if (r.retry_after_s != 0) {
    w.Put("Retry-After: ");
    w.PutUint(r.retry_after_s);
    w.Put("\r\n");
  }
  // 204 and 304 carry no Content-Length worth sending (RFC 9110 §8.6).
  if (r.status != 204 && r.status != 304) {
    w.Put("Content-Length: ");
    w.PutUint(r.body.size());
    w.Put("\r\n");
  }
  w.Put(r.close ? "Connection: close\r\n\r\n" : "\r\n");
  if (!r.omit_body) w.Put(r.body);
  return w.Result();
}

size_t EncodeLocalResponse(int status, std::string_view body, bool close, char* out, size_t cap,
                           uint32_t retry_after_s) {
  LocalResponse r;
  r.retry_after_s = retry_after_s;
  r.status = status;
  r.body = body;
  r.content_type = "text/plain";
  r.close = close;
  return EncodeLocalResponse(r, out, cap);
}

}  // namespace zproxy::codec::http1
