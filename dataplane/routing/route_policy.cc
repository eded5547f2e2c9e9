#include "dataplane/routing/route_policy.h"

#include <strings.h>

#include <algorithm>
#include <map>

namespace zproxy::routing {
namespace {

bool SameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

// protobuf maps keep no order: sorted by name, so the fields go out in a stable order.
std::vector<HeaderOp> Ops(const google::protobuf::Map<std::string, std::string>& m) {
  std::map<std::string, std::string> sorted(m.begin(), m.end());
  std::vector<HeaderOp> out;
  for (auto& [name, value] : sorted) {
    bool vars = value.find("${") != std::string::npos;
    out.push_back(HeaderOp{name, value, vars});
  }
  return out;
}

}  // namespace

bool HeaderChanges::Drops(std::string_view name) const {
  for (const std::string& r : remove) {
    if (SameName(r, name)) return true;
  }
  for (const HeaderOp& op : set) {
    if (SameName(op.name, name)) return true;
  }
  return false;
}

HeaderChanges HeaderChanges::Compile(const zproxy::v1::HeaderChanges& config) {
  HeaderChanges out;
  out.remove.assign(config.remove().begin(), config.remove().end());
  out.set = Ops(config.set());
  out.add = Ops(config.add());
  return out;
}

std::shared_ptr<const RoutePolicy> RoutePolicy::Compile(const zproxy::v1::Route& route,
                                                        uint32_t* next_rate_limit_index) {
  auto p = std::make_shared<RoutePolicy>();
  bool any = false;
  if (route.has_redirect() || route.https_redirect()) {
    any = true;
    p->action = RouteAction::kRedirect;
    const auto& r = route.redirect();
    p->redirect.scheme = route.https_redirect() ? "https" : r.scheme();
    p->redirect.host = r.host();
    p->redirect.port = r.port();
    p->redirect.path = r.path();
    p->redirect.prefix_rewrite = r.prefix_rewrite();
    p->redirect.strip_query = r.strip_query();
    p->redirect.code = static_cast<uint16_t>(r.code() == 0 ? 301 : r.code());
  } else if (route.has_direct_response()) {
    any = true;
    p->action = RouteAction::kDirectResponse;
    const auto& d = route.direct_response();
    p->direct.status = static_cast<uint16_t>(d.status());
    p->direct.body = d.body();
    p->direct.content_type = !d.content_type().empty()
                                 ? d.content_type()
                                 : (d.body().empty() ? std::string() : std::string("text/plain"));
  }
  const auto& match = route.match();
  p->matched_prefix_len = !match.path().empty() ? match.path().size() : match.prefix().size();
  p->prefix_rewrite_whole_path = !match.path().empty();
  if (!route.prefix_rewrite().empty()) {
    any = true;
    p->prefix_rewrite = route.prefix_rewrite();
  }
  if (route.has_regex_rewrite() && !route.regex_rewrite().pattern().empty()) {
    any = true;
    RE2::Options options;
    options.set_log_errors(false);
    p->regex_rewrite = std::make_unique<RE2>(route.regex_rewrite().pattern(), options);
    p->regex_substitution = route.regex_rewrite().substitution();
  }
  p->request_headers = HeaderChanges::Compile(route.request_headers());
  p->response_headers = HeaderChanges::Compile(route.response_headers());
  any = any || !p->request_headers.empty() || !p->response_headers.empty();
  p->timeout_ms = route.timeout_ms();
  any = any || p->timeout_ms != 0;
  if (route.has_retry()) {
    const auto& r = route.retry();
    std::string why;
    route_policy::ParseRetryOn(r.retry_on(), &p->retry.on, &why);  // validated already
    p->retry.num_retries = r.num_retries() != 0 ? r.num_retries() : (r.retry_on_size() > 0 ? 1 : 0);
    p->retry.per_try_timeout_ms = r.per_try_timeout_ms();
    p->retry.base_interval_ms = r.base_interval_ms() != 0 ? r.base_interval_ms() : 25;
    p->retry.max_interval_ms =
        r.max_interval_ms() != 0 ? r.max_interval_ms() : 10 * p->retry.base_interval_ms;
    p->retry.non_idempotent = r.retry_non_idempotent();
    p->has_retry = p->retry.num_retries > 0 || p->retry.per_try_timeout_ms > 0;
    any = any || p->has_retry;
  }
  if (route.has_rate_limit() && route.rate_limit().requests_per_second() > 0) {
    const auto& l = route.rate_limit();
    any = true;
    p->has_rate_limit = true;
    p->rate_limit.requests_per_second = l.requests_per_second();
    p->rate_limit.burst = l.burst() != 0 ? l.burst() : std::max(1.0, l.requests_per_second());
    std::string why;
    route_policy::ParseRateLimitKey(l.key(), &p->rate_limit.key, &p->rate_limit.header, &why);
    p->rate_limit_index = (*next_rate_limit_index)++;
  }
  if (!any) return nullptr;
  return p;
}

}  // namespace zproxy::routing
