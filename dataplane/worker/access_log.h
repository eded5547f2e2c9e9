// Per-worker access log: one line per response, formatted into a worker-local buffer and
// written with one write(2) when the buffer fills or on the worker's 50 ms tick, so the
// request path does no I/O of its own. Several workers append to the same O_APPEND file;
// each write holds whole lines.
//
// Line format (space separated, one request per line):
//   2026-11-25T22:15:01.123Z 203.0.113.7 "GET /path?q HTTP/1.1" 200 1234 0.512 127.0.0.1:3000 -
//   time (UTC), client address, request line, status, bytes sent to the client, seconds
//   from request head to the end of the response, upstream endpoint ("-" when answered
//   by zproxy itself), and a note ("-", or why the response is zproxy's or incomplete:
//   connect_refused, read_timeout, aborted, bad_request, ...).
//   On TLS listeners one more field follows: the protocol and cipher suite the client
//   negotiated, e.g. TLSv1.3/TLS_AES_128_GCM_SHA256. Then, always, the request ID
//   (X-Request-Id, docs/route-policy.md) and the W3C traceparent, "-" when none.
//
// access_log_format: json writes the same fields as one JSON object per line:
//   {"time":"...","client":"...","request":"GET / HTTP/1.1","status":200,"bytes":1234,
//    "duration_s":0.000512,"upstream":"127.0.0.1:3000","note":"","tls":"",
//    "request_id":"...","traceparent":""}
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace zproxy::dataplane {

struct AccessEntry {
  std::string_view client;
  std::string_view request_line;
  int status = 0;
  uint64_t bytes = 0;
  uint64_t duration_us = 0;
  std::string_view upstream;  // "" when answered by zproxy
  std::string_view note;
  std::string_view tls;
  std::string_view request_id;
  std::string_view traceparent;
};

class AccessLog {
 public:
  explicit AccessLog(int fd, bool json = false) : fd_(fd), json_(json) {}
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;
  ~AccessLog() { Flush(); }

  bool enabled() const { return fd_ >= 0; }
  void Append(const AccessEntry& e);
  void Flush();

 private:
  static constexpr size_t kBufSize = 64 * 1024;
  static constexpr size_t kMaxLine = 2048;
  void AppendText(const AccessEntry& e, long millis);
  void AppendJson(const AccessEntry& e, long millis);
  int fd_;
  bool json_;
  size_t len_ = 0;
  int64_t cached_sec_ = -1;
  char cached_ts_[24] = {0};  // "YYYY-MM-DDTHH:MM:SS"
  char buf_[kBufSize];
};

}  // namespace zproxy::dataplane
