#include "dataplane/proxy/head_writer.h"

#include <cstring>
#include <span>

namespace zproxy::proxy {

using http1::EqualsIgnoreCase;
using http1::IsHopByHop;

void HeadWriter::Put(std::string_view s) {
  if (overflow_ || s.size() > cap_ - len_) {
    overflow_ = true;
    return;
  }
  memcpy(buf_ + len_, s.data(), s.size());
  len_ += s.size();
}

void HeadWriter::PutUint(uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  char rev[24];
  for (int i = 0; i < n; i++) rev[i] = tmp[n - 1 - i];
  Put(std::string_view(rev, static_cast<size_t>(n)));
}

namespace {
// The request-target sent upstream is always origin-form: absolute-form
// ("http://h/p?q") is reduced to its path and query.
std::string_view OriginForm(const http1::RequestHead& req) {
  std::string_view t = req.target;
  if (!t.empty() && t.front() != '/' && t != "*") {
    size_t scheme = t.find("://");
    if (scheme != std::string_view::npos) {
      size_t slash = t.find('/', scheme + 3);
      if (slash == std::string_view::npos) return "/";
      return t.substr(slash);
    }
  }
  return t;
}

// "Connection: Upgrade" and the message's own Upgrade field(s), which the hop-by-hop rule
// dropped above.
void PutUpgrade(HeadWriter& w, std::span<const http1::Header> headers) {
  w.Put("Connection: Upgrade\r\n");
  for (const http1::Header& h : headers) {
    if (!EqualsIgnoreCase(h.name, "upgrade")) continue;
    w.Put("Upgrade: ");
    w.Put(h.value);
    w.Put("\r\n");
  }
}
}  // namespace

size_t WriteRequestHead(const http1::RequestHead& req, const RequestRewrite& rw, char* out,
                        size_t cap) {
  HeadWriter w(out, cap);
  w.Put(req.method);
  w.Put(" ");
  w.Put(OriginForm(req));
  // HTTP/1.0 clients are proxied as HTTP/1.0 so the upstream never answers chunked to a
  // client that cannot parse it; keep-alive is asked for explicitly to keep pooling.
  w.Put(req.version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  w.Put("Host: ");
  w.Put(!rw.host_rewrite.empty() ? rw.host_rewrite
                                 : (!req.host.empty() ? req.host : rw.fallback_host));
  w.Put("\r\n");
  bool xff_written = false;
  for (size_t i = 0; i < req.headers.size(); i++) {
    const http1::Header& h = req.headers[i];
    if (IsHopByHop(req.hop_by_hop, i) || EqualsIgnoreCase(h.name, "host")) continue;
    if (rw.add_forwarded) {
      if (EqualsIgnoreCase(h.name, "x-forwarded-proto") ||
          EqualsIgnoreCase(h.name, "x-forwarded-host")) {
        continue;
      }
      if (EqualsIgnoreCase(h.name, "x-forwarded-for") && !rw.client_ip.empty()) {
        // Several X-Forwarded-For fields are one list (RFC 9110 5.3): merge them into
        // one field, in order, with the client appended at the end.
        if (xff_written) continue;
        xff_written = true;
        w.Put("X-Forwarded-For: ");
        bool first = true;
        for (size_t j = i; j < req.headers.size(); j++) {
          if (!EqualsIgnoreCase(req.headers[j].name, "x-forwarded-for")) continue;
          if (req.headers[j].value.empty()) continue;
          if (!first) w.Put(", ");
          w.Put(req.headers[j].value);
          first = false;
        }
        if (!first) w.Put(", ");
        w.Put(rw.client_ip);
        w.Put("\r\n");
        continue;
      }
    }
    w.Put(h.name);
    w.Put(": ");
    w.Put(h.value);
    w.Put("\r\n");
  }
  if (rw.add_forwarded) {
    if (!xff_written && !rw.client_ip.empty()) {
      w.Put("X-Forwarded-For: ");
      w.Put(rw.client_ip);
      w.Put("\r\n");
    }
    w.Put("X-Forwarded-Proto: ");
    w.Put(rw.proto);
    w.Put("\r\n");
    if (!req.host.empty()) {
      w.Put("X-Forwarded-Host: ");
      w.Put(req.host);
      w.Put("\r\n");
    }
  }
  if (req.body == http1::BodyKind::kChunked) w.Put("Transfer-Encoding: chunked\r\n");
  if (rw.upgrade && req.upgrade) {
    PutUpgrade(w, req.headers);
  } else if (req.version_minor == 0) {
    w.Put("Connection: keep-alive\r\n");
  }
  w.Put("\r\n");
  return w.overflow() ? 0 : w.size();
}

size_t WriteResponseHead(const http1::ResponseHead& resp, const ResponseRewrite& rw, char* out,
                         size_t cap) {
  HeadWriter w(out, cap);
  w.Put("HTTP/1.1 ");
  w.PutUint(resp.status);
  w.Put(" ");
  w.Put(resp.reason);
  w.Put("\r\n");
  for (size_t i = 0; i < resp.headers.size(); i++) {
    if (IsHopByHop(resp.hop_by_hop, i)) continue;
    const http1::Header& h = resp.headers[i];
    w.Put(h.name);
    w.Put(": ");
    w.Put(h.value);
    w.Put("\r\n");
  }
  bool informational = resp.status >= 100 && resp.status < 200;
  if (rw.upgrade && resp.upgrade) PutUpgrade(w, resp.headers);
  if (!informational) {
    if (resp.body == http1::BodyKind::kChunked && !rw.dechunk) {
      w.Put("Transfer-Encoding: chunked\r\n");
    }
    if (rw.close) {
      w.Put("Connection: close\r\n");
    } else if (rw.client_http10) {
      w.Put("Connection: keep-alive\r\n");
    }
  }
  w.Put("\r\n");
  return w.overflow() ? 0 : w.size();
}

const char* StatusReason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
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
  return "Error";
}

size_t WriteLocalResponse(int status, std::string_view body, bool close, char* out, size_t cap) {
  HeadWriter w(out, cap);
  w.Put("HTTP/1.1 ");
  w.PutUint(static_cast<uint64_t>(status));
  w.Put(" ");
  w.Put(StatusReason(status));
  w.Put("\r\nContent-Type: text/plain\r\nContent-Length: ");
  w.PutUint(body.size());
  w.Put(close ? "\r\nConnection: close\r\n\r\n" : "\r\n\r\n");
  w.Put(body);
  return w.overflow() ? 0 : w.size();
}

}  // namespace zproxy::proxy
