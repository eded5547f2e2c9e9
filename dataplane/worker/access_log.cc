#include "dataplane/worker/access_log.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace zproxy::dataplane {

namespace {

std::string_view OrDash(std::string_view s) { return s.empty() ? std::string_view("-") : s; }

// Writes `s` as a JSON string body (no quotes) into out; returns the bytes written, at
// most cap (the caller's line bound; a value cut there is still valid JSON text).
size_t JsonEscape(std::string_view s, char* out, size_t cap) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t n = 0;
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      if (n + 2 > cap) break;
      out[n++] = '\\';
      out[n++] = static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      if (n + 6 > cap) break;
      memcpy(out + n, "\\u00", 4);
      out[n + 4] = kHex[c >> 4];
      out[n + 5] = kHex[c & 15];
      n += 6;
    } else {
      if (n + 1 > cap) break;
      out[n++] = static_cast<char>(c);
    }
  }
  return n;
}

}  // namespace

void AccessLog::Append(const AccessEntry& e) {
  if (fd_ < 0) return;
  if (kBufSize - len_ < kMaxLine) Flush();
  timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != cached_sec_) {
    tm t;
    gmtime_r(&ts.tv_sec, &t);
    strftime(cached_ts_, sizeof(cached_ts_), "%Y-%m-%dT%H:%M:%S", &t);
    cached_sec_ = ts.tv_sec;
  }
  if (json_) {
    AppendJson(e, ts.tv_nsec / 1000000);
  } else {
    AppendText(e, ts.tv_nsec / 1000000);
  }
}

void AccessLog::AppendText(const AccessEntry& e, long millis) {
  // The request line is the client's bytes: cap it so a line stays bounded; the parser
  // already guarantees it has no CR/LF or control bytes. The IDs are capped likewise.
  std::string_view request_line = e.request_line.substr(0, 512);
  std::string_view client = OrDash(e.client), upstream = OrDash(e.upstream), note = OrDash(e.note),
                   rid = OrDash(e.request_id.substr(0, 128)),
                   tp = OrDash(e.traceparent.substr(0, 128));
  int n = snprintf(
      buf_ + len_, kMaxLine, "%s.%03ldZ %.*s \"%.*s\" %d %lu %lu.%06lu %.*s %.*s%s%.*s %.*s %.*s\n",
      cached_ts_, millis, static_cast<int>(client.size()), client.data(),
      static_cast<int>(request_line.size()), request_line.data(), e.status,
      static_cast<unsigned long>(e.bytes), static_cast<unsigned long>(e.duration_us / 1000000),
      static_cast<unsigned long>(e.duration_us % 1000000), static_cast<int>(upstream.size()),
      upstream.data(), static_cast<int>(note.size()), note.data(), e.tls.empty() ? "" : " ",
      static_cast<int>(e.tls.size()), e.tls.data(), static_cast<int>(rid.size()), rid.data(),
      static_cast<int>(tp.size()), tp.data());
  if (n > 0) len_ += std::min<size_t>(static_cast<size_t>(n), kMaxLine - 1);
}

void AccessLog::AppendJson(const AccessEntry& e, long millis) {
  char* out = buf_ + len_;
  size_t n = 0;
  // Every value is capped (request line 160, IDs 64, ...) and escaped within what is left
  // of kMaxLine, so a line is bounded whatever the client sent.
  auto raw = [&](std::string_view s) {
    size_t k = std::min(s.size(), kMaxLine - 1 - n);
    if (k != 0) memcpy(out + n, s.data(), k);  // an empty view may hold a null pointer
    n += k;
  };
  auto str = [&](std::string_view key, std::string_view value, size_t cap) {
    raw(key);
    raw("\"");
    // Room kept for the keys and numbers still to come (under 300 bytes): a value cut to
    // fit still leaves a whole JSON object.
    size_t room = n + 400 < kMaxLine ? kMaxLine - 400 - n : 0;
    n += JsonEscape(value.substr(0, cap), out + n, std::min<size_t>(room, 6 * cap));
    raw("\"");
  };
  char ts[40];
  snprintf(ts, sizeof(ts), "%s.%03ldZ", cached_ts_, millis);
  str("{\"time\":", ts, 40);
  str(",\"client\":", e.client, 64);
  str(",\"request\":", e.request_line, 160);
  char nums[96];
  int k = snprintf(nums, sizeof(nums), ",\"status\":%d,\"bytes\":%lu,\"duration_s\":%lu.%06lu",
                   e.status, static_cast<unsigned long>(e.bytes),
                   static_cast<unsigned long>(e.duration_us / 1000000),
                   static_cast<unsigned long>(e.duration_us % 1000000));
  raw(std::string_view(nums, static_cast<size_t>(k)));
  str(",\"upstream\":", e.upstream, 64);
  str(",\"note\":", e.note, 64);
  str(",\"tls\":", e.tls, 96);
  str(",\"request_id\":", e.request_id, 64);
  str(",\"traceparent\":", e.traceparent, 64);
  raw("}\n");
  len_ += n;
}

void AccessLog::Flush() {
  size_t off = 0;
  while (off < len_) {
    ssize_t n = write(fd_, buf_ + off, len_ - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // a full disk must not stop the proxy; the lines are dropped
    off += static_cast<size_t>(n);
  }
  len_ = 0;
}

}  // namespace zproxy::dataplane
