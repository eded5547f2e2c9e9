#include "dataplane/proxy/redirect.h"

#include <charconv>

#include "dataplane/proxy/scratch_writer.h"

namespace zproxy::proxy {
namespace {

// Splits "host:port" / "[v6]:port" / "host" into host and port ("" when none).
void SplitAuthority(std::string_view authority, std::string_view* host, std::string_view* port) {
  *host = authority;
  *port = {};
  size_t colon = authority.rfind(':');
  size_t bracket = authority.rfind(']');
  if (colon == std::string_view::npos) return;
  if (bracket != std::string_view::npos && colon < bracket) return;  // "[::1]" without port
  if (authority[0] != '[' && authority.find(':') != colon) return;   // bare v6: no port
  *host = authority.substr(0, colon);
  *port = authority.substr(colon + 1);
}

}  // namespace

std::string_view BuildLocation(const routing::Redirect& r, size_t matched_prefix_len,
                               const http::RequestHead& req, std::span<char> out) {
  std::string_view req_host, req_port;
  SplitAuthority(req.authority, &req_host, &req_port);
  const std::string_view scheme = !r.scheme.empty() ? std::string_view(r.scheme) : req.scheme;
  const std::string_view host = !r.host.empty() ? std::string_view(r.host) : req_host;
  ScratchWriter w(out);
  if (!host.empty()) {
    w.Put(scheme);
    w.Put("://");
    w.Put(host);
    char buf[8];
    std::string_view port;
    if (r.port != 0) {
      auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), r.port);
      port = std::string_view(buf, static_cast<size_t>(end - buf));
    } else if (scheme == req.scheme && r.host.empty()) {
      port = req_port;  // same scheme and host: the same port
    }
    bool default_port = (scheme == "http" && port == "80") || (scheme == "https" && port == "443");
    if (!port.empty() && !default_port) {
      w.Put(":");
      w.Put(port);
    }
  }
  const std::string_view path = req.path == "*" ? std::string_view("/") : req.path;
  if (!r.path.empty()) {
    w.Put(r.path);
  } else if (!r.prefix_rewrite.empty()) {
    w.Put(r.prefix_rewrite);
    w.Put(path.substr(std::min(matched_prefix_len, path.size())));
  } else {
    w.Put(path);
  }
  if (!r.strip_query) {
    std::string_view pq = req.path_and_query;
    size_t q = pq.find('?');
    if (q != std::string_view::npos) w.Put(pq.substr(q));
  }
  return w.ok ? w.Since(0) : std::string_view();
}

}  // namespace zproxy::proxy
