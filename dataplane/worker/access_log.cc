#include "dataplane/worker/access_log.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace zproxy::dataplane {

void AccessLog::Append(std::string_view client, std::string_view request_line, int status,
                       uint64_t bytes, uint64_t duration_us, std::string_view upstream,
                       std::string_view note, std::string_view tls) {
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
  // The request line is the client's bytes: cap it so a line stays bounded; the parser
  // already guarantees it has no CR/LF or control bytes.
  if (request_line.size() > 512) request_line = request_line.substr(0, 512);
  int n = snprintf(
      buf_ + len_, kMaxLine, "%s.%03ldZ %.*s \"%.*s\" %d %lu %lu.%06lu %.*s %.*s%s%.*s\n",
      cached_ts_, ts.tv_nsec / 1000000, static_cast<int>(client.empty() ? 1 : client.size()),
      client.empty() ? "-" : client.data(), static_cast<int>(request_line.size()),
      request_line.data(), status, static_cast<unsigned long>(bytes),
      static_cast<unsigned long>(duration_us / 1000000),
      static_cast<unsigned long>(duration_us % 1000000),
      static_cast<int>(upstream.empty() ? 1 : upstream.size()),
      upstream.empty() ? "-" : upstream.data(), static_cast<int>(note.empty() ? 1 : note.size()),
      note.empty() ? "-" : note.data(), tls.empty() ? "" : " ", static_cast<int>(tls.size()),
      tls.data());
  if (n > 0) len_ += std::min<size_t>(static_cast<size_t>(n), kMaxLine - 1);
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
