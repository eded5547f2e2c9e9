// The Location of a route's redirect (RoutePolicy::redirect, https_redirect): the
// request's URL with the parts the route replaces. Written into caller memory.
#pragma once

#include <span>
#include <string_view>

#include "dataplane/http/message.h"
#include "dataplane/routing/route_policy.h"

namespace zproxy::proxy {

// "scheme://host[:port]/path[?query]". Without a host (an HTTP/1.0 request with no Host
// and none configured) the Location is the path alone, which RFC 9110 §10.2.2 allows.
// `matched_prefix_len`: how much of the path the route's prefix covered. Returns "" when
// `out` is too small.
std::string_view BuildLocation(const routing::Redirect& r, size_t matched_prefix_len,
                               const http::RequestHead& req, std::span<char> out);

}  // namespace zproxy::proxy
