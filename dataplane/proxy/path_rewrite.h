// A route's path rewrites (RoutePolicy): prefix_rewrite replaces the part of the path its
// match covered, then regex_rewrite (RE2) replaces every match of its pattern. The query
// is kept. No allocation: the new path-and-query is written into the caller's memory.
#pragma once

#include <span>
#include <string_view>

#include "dataplane/proxy/scratch_writer.h"
#include "dataplane/routing/route_policy.h"

namespace zproxy::proxy {

enum class RewriteResult : uint8_t { kUnchanged, kRewritten, kTooLong, kInvalid };

// `path` is the request path without the query, `path_and_query` the whole target.
// kRewritten: *result (a view into out) is the new target. kInvalid: the rewrite did not
// yield an origin-form path ("/..."), which the proxy answers with 500 rather than send.
RewriteResult RewritePath(const routing::RoutePolicy& policy, std::string_view path,
                          std::string_view path_and_query, std::span<char> out,
                          std::string_view* result);

// Every match of `re` in `text` replaced by `substitution` (\0..\9 name groups, \\ is a
// backslash), appended to w. Empty matches advance by one byte, as RE2::GlobalReplace.
void RegexReplaceAll(const RE2& re, std::string_view substitution, std::string_view text,
                     ScratchWriter* w);

}  // namespace zproxy::proxy
