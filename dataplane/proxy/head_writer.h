// Builds the message heads the proxy sends: the request head towards the upstream and
// the response head towards the client. Pure functions over parsed heads (no I/O), so
// the header policy is unit-tested on its own:
//  - hop-by-hop fields are dropped (the fixed list and those named in Connection);
//  - X-Forwarded-For gets the client address appended, X-Forwarded-Proto and
//    X-Forwarded-Host are set by the proxy (client-sent values are replaced);
//  - Host is rewritten when the route says so;
//  - the framing the proxy forwards (chunked) is re-declared explicitly.
#pragma once

#include <cstddef>
#include <string_view>

#include "dataplane/http1/http1.h"

namespace zproxy::proxy {

// Appends to a fixed buffer; remembers overflow instead of failing at each call.
class HeadWriter {
 public:
  HeadWriter(char* buf, size_t cap) : buf_(buf), cap_(cap) {}
  void Put(std::string_view s);
  void PutUint(uint64_t v);
  bool overflow() const { return overflow_; }
  size_t size() const { return len_; }

 private:
  char* buf_;
  size_t cap_;
  size_t len_ = 0;
  bool overflow_ = false;
};

struct RequestRewrite {
  std::string_view host_rewrite;   // "" = keep the client's Host
  std::string_view fallback_host;  // used when the client sent no Host (HTTP/1.0)
  std::string_view client_ip;      // "" = unknown: X-Forwarded-For is left as received
  bool add_forwarded = true;
  std::string_view proto = "http";
  // Forward the client's protocol upgrade (WebSocket): Upgrade and Connection are hop-by-hop
  // and dropped like the others, then re-declared as "Connection: Upgrade" + its Upgrade.
  bool upgrade = false;
};

// Returns the head length, or 0 if it does not fit in `cap`.
size_t WriteRequestHead(const http1::RequestHead& req, const RequestRewrite& rw, char* out,
                        size_t cap);

struct ResponseRewrite {
  bool close = false;          // we will close the client connection after this response
  bool client_http10 = false;  // client spoke HTTP/1.0: say keep-alive explicitly
  bool dechunk = false;        // chunked body re-sent close-delimited (HTTP/1.0 client)
  bool upgrade = false;        // 101 Switching Protocols: re-declare Connection + Upgrade
};

size_t WriteResponseHead(const http1::ResponseHead& resp, const ResponseRewrite& rw, char* out,
                         size_t cap);

// A complete local response (errors, 404): short plain-text body naming the cause.
size_t WriteLocalResponse(int status, std::string_view body, bool close, char* out, size_t cap);

const char* StatusReason(int status);

}  // namespace zproxy::proxy
