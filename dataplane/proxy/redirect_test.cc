#include "dataplane/proxy/redirect.h"

#include <gtest/gtest.h>

#include <string>

namespace zproxy::proxy {
namespace {

std::string Location(const routing::Redirect& r, std::string_view authority, std::string_view path,
                     std::string_view pq, size_t prefix_len = 0, std::string_view scheme = "http") {
  http::RequestHead req;
  req.scheme = scheme;
  req.authority = authority;
  req.path = path;
  req.path_and_query = pq;
  char out[256];
  return std::string(BuildLocation(r, prefix_len, req, out));
}

TEST(Redirect, HttpsKeepsHostDropsPortKeepsQuery) {
  routing::Redirect r;
  r.scheme = "https";
  EXPECT_EQ(Location(r, "example.com:8080", "/a", "/a?x=1"), "https://example.com/a?x=1");
  EXPECT_EQ(Location(r, "[::1]:8080", "/a", "/a"), "https://[::1]/a");
}

TEST(Redirect, PathPrefixHostPortStripQuery) {
  routing::Redirect r;
  r.path = "/new/";
  EXPECT_EQ(Location(r, "h:8080", "/old/x", "/old/x?q"), "http://h:8080/new/?q");
  routing::Redirect p;
  p.prefix_rewrite = "/v2/";
  p.strip_query = true;
  EXPECT_EQ(Location(p, "h", "/old/x/y", "/old/x/y?q", 5), "http://h/v2/x/y");
  routing::Redirect h;
  h.host = "other.example";
  h.port = 8443;
  h.scheme = "https";
  EXPECT_EQ(Location(h, "h:80", "/", "/"), "https://other.example:8443/");
  h.port = 443;
  EXPECT_EQ(Location(h, "h:80", "/", "/"), "https://other.example/");
}

TEST(Redirect, NoHostGivesRelativeLocation) {
  routing::Redirect r;
  r.path = "/login";
  EXPECT_EQ(Location(r, "", "/x", "/x"), "/login");
}

}  // namespace
}  // namespace zproxy::proxy
