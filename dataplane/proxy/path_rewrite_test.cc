#include "dataplane/proxy/path_rewrite.h"

#include <gtest/gtest.h>

#include <string>

namespace zproxy::proxy {
namespace {

std::string Rewrite(const routing::RoutePolicy& p, std::string_view path, std::string_view pq,
                    RewriteResult expect = RewriteResult::kRewritten) {
  char out[512];
  std::string_view result;
  EXPECT_EQ(RewritePath(p, path, pq, out, &result), expect);
  return std::string(result);
}

TEST(PathRewrite, PrefixKeepsRestAndQuery) {
  routing::RoutePolicy p;
  p.prefix_rewrite = "/v2/";
  p.matched_prefix_len = 5;  // "/api/"
  EXPECT_EQ(Rewrite(p, "/api/users/1", "/api/users/1?x=1"), "/v2/users/1?x=1");
  p.prefix_rewrite = "/";
  EXPECT_EQ(Rewrite(p, "/api/", "/api/"), "/");
  p.prefix_rewrite_whole_path = true;  // match.path
  p.prefix_rewrite = "/new";
  EXPECT_EQ(Rewrite(p, "/api/", "/api/?q"), "/new?q");
}

TEST(PathRewrite, RegexReplacesEveryMatchWithGroups) {
  routing::RoutePolicy p;
  p.regex_rewrite = std::make_unique<RE2>("^/service/([^/]+)(/.*)$");
  p.regex_substitution = "\\2/instance/\\1";
  EXPECT_EQ(Rewrite(p, "/service/foo/v1/api", "/service/foo/v1/api?a=b"),
            "/v1/api/instance/foo?a=b");
  p.regex_rewrite = std::make_unique<RE2>("a");
  p.regex_substitution = "b";
  EXPECT_EQ(Rewrite(p, "/aaa/xa", "/aaa/xa"), "/bbb/xb");
  // Empty matches advance one byte (as RE2::GlobalReplace does).
  p.regex_rewrite = std::make_unique<RE2>("x*");
  p.regex_substitution = "-";
  Rewrite(p, "/ab", "/ab", RewriteResult::kInvalid);  // "-/-a-b-" is no origin path
  p.regex_rewrite = std::make_unique<RE2>("/x*");
  p.regex_substitution = "/y";
  EXPECT_EQ(Rewrite(p, "/a/xx", "/a/xx"), "/ya/y");
}

TEST(PathRewrite, PrefixThenRegexAndInvalidResults) {
  routing::RoutePolicy p;
  p.prefix_rewrite = "/v2/";
  p.matched_prefix_len = 5;
  p.regex_rewrite = std::make_unique<RE2>("/users/");
  p.regex_substitution = "/people/";
  EXPECT_EQ(Rewrite(p, "/api/users/7", "/api/users/7"), "/v2/people/7");
  routing::RoutePolicy q;
  q.regex_rewrite = std::make_unique<RE2>("^/");
  q.regex_substitution = "";
  Rewrite(q, "/x", "/x", RewriteResult::kInvalid);
  routing::RoutePolicy none;
  Rewrite(none, "/x", "/x", RewriteResult::kUnchanged);
}

TEST(PathRewrite, TooLong) {
  routing::RoutePolicy p;
  p.prefix_rewrite = std::string(400, 'a').insert(0, "/");
  p.matched_prefix_len = 1;
  char out[256];
  std::string_view result;
  EXPECT_EQ(RewritePath(p, "/x", "/x", out, &result), RewriteResult::kTooLong);
}

}  // namespace
}  // namespace zproxy::proxy
