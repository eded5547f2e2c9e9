#include "controlplane/admin/metrics_scrape.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "common/net_address.h"
#include "common/unique_fd.h"

namespace zproxy::admin {

bool ScrapeMetrics(const std::string& address, int timeout_ms, std::string* body,
                   std::string* error) {
  NetAddress addr;
  if (!ParseNetAddress(address, &addr, error)) {
    *error = "metrics_address \"" + address + "\": " + *error;
    return false;
  }
  UniqueFd fd(socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd.get(), addr.sa(), addr.len) != 0) {
    *error = "connecting to the data plane's /metrics on " + address + ": " + strerror(errno);
    return false;
  }
  const std::string req = "GET /metrics HTTP/1.0\r\nHost: zproxyd\r\n\r\n";
  if (send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    *error = "sending to " + address + ": " + strerror(errno);
    return false;
  }
  std::string response;
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      *error = "reading /metrics from " + address + ": " + strerror(errno);
      return false;
    }
    if (n == 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  size_t head_end = response.find("\r\n\r\n");
  if (head_end == std::string::npos || response.compare(0, 12, "HTTP/1.1 200") != 0) {
    if (head_end == std::string::npos || response.compare(0, 12, "HTTP/1.0 200") != 0) {
      *error = "unexpected /metrics response from " + address + ": " +
               response.substr(0, response.find("\r\n"));
      return false;
    }
  }
  *body = response.substr(head_end + 4);
  return true;
}

std::map<std::string, double> SumByName(const std::string& text) {
  std::map<std::string, double> sums;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    size_t name_end = line.find_first_of("{ ");
    size_t value_at = line.rfind(' ');
    if (name_end == std::string::npos || value_at == std::string::npos) continue;
    // "name{labels} value" or "name value"; a timestamp after the value is not emitted here.
    sums[line.substr(0, name_end)] += std::strtod(line.c_str() + value_at + 1, nullptr);
  }
  return sums;
}

}  // namespace zproxy::admin
