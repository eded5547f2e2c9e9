#include "dataplane/codec/http1/client_stream.h"

#include "dataplane/codec/http1/head_fields.h"
#include "dataplane/codec/http1/writer.h"

namespace zproxy::codec::http1 {

size_t EncodeRequestHead(const http::RequestHead& req, char* out, size_t cap) {
  bool http10 = req.protocol == "HTTP/1.0";
  Writer w(out, cap);
  w.Put(req.method);
  w.Put(" ");
  if (!req.path_and_query.empty() && req.path_and_query.front() == '?') w.Put("/");
  w.Put(req.path_and_query);
  w.Put(http10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  w.Put("Host: ");
  w.Put(req.authority);
  w.Put("\r\n");
  WriteFields(w, req.fields);
  if (req.body.framing == http::Framing::kChunked) w.Put("Transfer-Encoding: chunked\r\n");
  if (!req.upgrade.empty()) {
    WriteUpgrade(w, req.upgrade);
  } else if (http10) {
    w.Put("Connection: keep-alive\r\n");  // keeps the upstream connection poolable
  }
  w.Put("\r\n");
  return w.Result();
}

void ClientStream::Begin(http::Method method, bool upgrade_requested) {
  method_ = method;
  upgrade_requested_ = upgrade_requested;
  keep_alive_ = false;
  response_body_.Start(http::Body{}, false);
}

Status ClientStream::DecodeResponseHead(std::string_view in, const zproxy::http1::Limits& limits,
                                        std::span<http::Field> storage, ResponseHeadEvent* out,
                                        Error* error) {
  zproxy::http1::ResponseHead resp;
  Status st = zproxy::http1::ParseResponse(in, method_, limits, storage, &resp, error);
  if (st != Status::kDone) return st;
  if (resp.status == 101 && !(upgrade_requested_ && resp.upgrade)) {
    // Switching to a protocol nobody asked for (or without naming it).
    *error = Error::kBadStatusLine;
    return Status::kError;
  }
  http::ResponseHead& h = out->head;
  h.status = resp.status;
  h.reason = resp.reason;
  h.upgrade = resp.upgrade ? UpgradeValue(resp.headers) : std::string_view();
  h.fields = EndToEndFields(resp.headers, resp.hop_by_hop, /*drop_host=*/false);
  h.body.framing = ToFraming(resp.body);
  h.body.length = resp.content_length;
  out->consumed = resp.head_bytes;
  out->keep_alive = resp.keep_alive;
  return Status::kDone;
}

void ClientStream::StartResponseBody(const ResponseHeadEvent& ev, bool decode) {
  keep_alive_ = ev.keep_alive;
  response_body_.Start(ev.head.body, decode);
}

}  // namespace zproxy::codec::http1
