#include "common/route_policy_rules.h"

#include <re2/re2.h>
#include <strings.h>

#include <algorithm>
#include <set>

namespace zproxy::route_policy {
namespace {

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  for (char t : std::string_view("!#$%&'*+-.^_`|~")) {
    if (c == t) return true;
  }
  return false;
}

// Compiles `pattern` as RE2 would at run time; "" when it is valid, else why not.
std::string RegexError(const std::string& pattern, int* groups = nullptr) {
  RE2::Options options;
  options.set_log_errors(false);
  RE2 re(pattern, options);
  if (!re.ok()) return re.error();
  if (groups != nullptr) *groups = re.NumberOfCapturingGroups();
  return "";
}

struct Checker {
  PolicyErrors* errors;
  void Error(std::string path, std::string message) {
    errors->push_back(PolicyError{std::move(path), std::move(message)});
  }
};

void CheckMatch(const zproxy::v1::RouteMatch& m, const std::string& path, Checker* c) {
  if (!m.regex().empty()) {
    if (!m.prefix().empty() || !m.path().empty()) {
      c->Error(path + ".regex", "give one of prefix, path and regex");
    }
    std::string why = RegexError(m.regex());
    if (!why.empty()) c->Error(path + ".regex", "invalid RE2 pattern: " + why);
  }
  for (int i = 0; i < m.headers_size(); ++i) {
    const auto& h = m.headers(i);
    std::string hp = path + ".headers[" + std::to_string(i) + "]";
    if (!IsFieldName(h.name())) {
      c->Error(hp + ".name", "must be a header field name, got " + Quote(h.name()));
    }
    int given = !h.exact().empty() + !h.prefix().empty() + !h.regex().empty() + h.has_present();
    if (given > 1) c->Error(hp, "give at most one of exact, prefix, regex and present");
    if (!h.regex().empty()) {
      std::string why = RegexError(h.regex());
      if (!why.empty()) c->Error(hp + ".regex", "invalid RE2 pattern: " + why);
    }
  }
  for (int i = 0; i < m.query_params_size(); ++i) {
    const auto& q = m.query_params(i);
    std::string qp = path + ".query_params[" + std::to_string(i) + "]";
    if (q.name().empty()) c->Error(qp + ".name", "a query parameter name is required");
    int given = !q.exact().empty() + !q.regex().empty() + q.has_present();
    if (given > 1) c->Error(qp, "give at most one of exact, regex and present");
    if (!q.regex().empty()) {
      std::string why = RegexError(q.regex());
      if (!why.empty()) c->Error(qp + ".regex", "invalid RE2 pattern: " + why);
    }
  }
}

bool IsHostText(const std::string& host) {
  if (host.empty() || host.size() > 255) return false;
  for (char ch : host) {
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == ':' || ch == '[' || ch == ']' || ch == '_';
    if (!ok) return false;
  }
  return true;
}

bool IsPathText(const std::string& p) {
  if (p.empty() || p[0] != '/') return false;
  for (unsigned char ch : p) {
    if (ch <= 0x20 || ch == 0x7f || ch == '?' || ch == '#') return false;
  }
  return true;
}

void CheckRedirect(const zproxy::v1::Route& r, const std::string& path, Checker* c) {
  const auto& d = r.redirect();
  const std::string rp = path + ".redirect";
  const uint32_t code = d.code();
  if (code != 0 && code != 301 && code != 302 && code != 303 && code != 307 && code != 308) {
    c->Error(rp + ".code", "must be 301, 302, 303, 307 or 308, got " + std::to_string(code));
  }
  if (!d.scheme().empty() && d.scheme() != "http" && d.scheme() != "https") {
    c->Error(rp + ".scheme", "must be \"http\" or \"https\", got " + Quote(d.scheme()));
  }
  if (!d.host().empty() && !IsHostText(d.host())) {
    c->Error(rp + ".host", "invalid host " + Quote(d.host()));
  }
  if (d.port() > 65535) c->Error(rp + ".port", "must be 1..65535, got " + std::to_string(d.port()));
  if (!d.path().empty() && !d.prefix_rewrite().empty()) {
    c->Error(rp, "give at most one of path and prefix_rewrite");
  }
  if (!d.path().empty() && !IsPathText(d.path())) {
    c->Error(rp + ".path",
             "must start with '/' and hold no spaces, '?' or '#', got " + Quote(d.path()));
  }
  if (!d.prefix_rewrite().empty()) {
    if (!IsPathText(d.prefix_rewrite())) {
      c->Error(rp + ".prefix_rewrite", "must start with '/' and hold no spaces, '?' or '#', got " +
                                           Quote(d.prefix_rewrite()));
    }
    if (r.match().prefix().empty() && r.match().path().empty()) {
      c->Error(rp + ".prefix_rewrite", "replaces the matched prefix: the route needs match.prefix");
    }
  }
}

void CheckDirectResponse(const zproxy::v1::Route& r, const std::string& path, Checker* c) {
  const auto& d = r.direct_response();
  const std::string dp = path + ".direct_response";
  if (d.status() < 200 || d.status() > 599) {
    c->Error(dp + ".status", "must be an HTTP status 200..599, got " + std::to_string(d.status()));
  } else if ((d.status() == 204 || d.status() == 304) && !d.body().empty()) {
    c->Error(dp + ".body", "a " + std::to_string(d.status()) + " response has no body");
  }
  // As Envoy's default: a direct response is a short answer, not a file server.
  if (d.body().size() > 4096) c->Error(dp + ".body", "at most 4096 bytes");
  if (!d.content_type().empty() && !IsFieldValue(d.content_type())) {
    c->Error(dp + ".content_type", "invalid field value " + Quote(d.content_type()));
  }
}

void CheckRetry(const zproxy::v1::Route& r, const std::string& path, Checker* c) {
  const auto& p = r.retry();
  const std::string rp = path + ".retry";
  RetryConditions conditions;
  std::string why;
  if (!ParseRetryOn(p.retry_on(), &conditions, &why)) c->Error(rp + ".retry_on", why);
  if (p.num_retries() > 10) {
    c->Error(rp + ".num_retries", "must be 0..10, got " + std::to_string(p.num_retries()));
  }
  if (p.max_interval_ms() != 0 && p.max_interval_ms() < p.base_interval_ms()) {
    c->Error(rp + ".max_interval_ms", "must not be below base_interval_ms");
  }
  if (r.timeout_ms() != 0 && p.per_try_timeout_ms() > r.timeout_ms()) {
    c->Error(rp + ".per_try_timeout_ms",
             "is longer than the route's timeout_ms (" + std::to_string(r.timeout_ms()) + ")");
  }
}

void CheckRateLimit(const zproxy::v1::Route& r, const std::string& path, Checker* c) {
  const auto& l = r.rate_limit();
  const std::string lp = path + ".rate_limit";
  if (!(l.requests_per_second() > 0) || l.requests_per_second() > 1e7) {
    c->Error(lp + ".requests_per_second", "must be above 0 and at most 10000000, got " +
                                              std::to_string(l.requests_per_second()));
  }
  if (l.burst() > 10000000) c->Error(lp + ".burst", "must be at most 10000000");
  RateKeyKind kind;
  std::string header, why;
  if (!ParseRateLimitKey(l.key(), &kind, &header, &why)) c->Error(lp + ".key", why);
}

}  // namespace

bool RetryConditions::RetriesStatus(uint16_t status) const {
  if ((bits & kRetry5xx) && status >= 500 && status <= 599) return true;
  if ((bits & kRetryGatewayError) && (status == 502 || status == 503 || status == 504)) return true;
  return std::find(statuses.begin(), statuses.end(), status) != statuses.end();
}

bool ParseRetryOn(const google::protobuf::RepeatedPtrField<std::string>& retry_on,
                  RetryConditions* out, std::string* why) {
  for (const std::string& item : retry_on) {
    if (item == "connect_failure") {
      out->bits |= kRetryConnectFailure;
    } else if (item == "reset") {
      out->bits |= kRetryReset;
    } else if (item == "5xx") {
      out->bits |= kRetry5xx;
    } else if (item == "gateway_error") {
      out->bits |= kRetryGatewayError;
    } else if (item == "per_try_timeout") {
      out->bits |= kRetryPerTryTimeout;
    } else if (item.size() == 3 && item.find_first_not_of("0123456789") == std::string::npos &&
               item[0] >= '1' && item[0] <= '5') {
      out->statuses.push_back(static_cast<uint16_t>(std::stoi(item)));
    } else {
      *why = "unknown retry condition " + Quote(item) +
             " (connect_failure, reset, 5xx, gateway_error, per_try_timeout, or a status such as "
             "\"503\")";
      return false;
    }
  }
  return true;
}

bool ParseRateLimitKey(const std::string& key, RateKeyKind* kind, std::string* header,
                       std::string* why) {
  if (key.empty() || key == "none") {
    *kind = RateKeyKind::kNone;
    return true;
  }
  if (key == "client_address") {
    *kind = RateKeyKind::kClientAddress;
    return true;
  }
  if (key.rfind("header:", 0) == 0) {
    std::string name = key.substr(7);
    if (!IsFieldName(name)) {
      *why = "\"header:\" must be followed by a header name, got " + Quote(key);
      return false;
    }
    *kind = RateKeyKind::kHeader;
    *header = Lower(name);
    return true;
  }
  *why = "must be \"none\", \"client_address\" or \"header:<name>\", got " + Quote(key);
  return false;
}

bool IsProtectedField(std::string_view name) {
  if (!name.empty() && name[0] == ':') return true;
  static constexpr std::string_view kProtected[] = {
      "connection", "keep-alive",        "proxy-connection", "transfer-encoding",
      "te",         "trailer",           "upgrade",          "content-length",
      "host",       "proxy-authenticate"};
  for (std::string_view p : kProtected) {
    if (name.size() == p.size() && strncasecmp(name.data(), p.data(), p.size()) == 0) return true;
  }
  return false;
}

bool IsFieldName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), IsTokenChar);
}

bool IsFieldValue(std::string_view value) {
  for (unsigned char ch : value) {
    if (ch == '\r' || ch == '\n' || ch == 0) return false;
  }
  return true;
}

bool VariableByName(std::string_view name, Variable* out) {
  static constexpr std::pair<std::string_view, Variable> kNames[] = {
      {"client_address", Variable::kClientAddress},
      {"request_id", Variable::kRequestId},
      {"listener", Variable::kListener},
      {"tls_version", Variable::kTlsVersion},
      {"tls_sni", Variable::kTlsSni},
  };
  for (const auto& [n, v] : kNames) {
    if (n == name) {
      *out = v;
      return true;
    }
  }
  return false;
}

bool CheckVariables(std::string_view value, std::string* why) {
  for (size_t pos = value.find("${"); pos != std::string_view::npos;
       pos = value.find("${", pos + 2)) {
    size_t end = value.find('}', pos);
    if (end == std::string_view::npos) {
      *why = "unterminated ${ in " + Quote(value);
      return false;
    }
    Variable v;
    std::string_view name = value.substr(pos + 2, end - pos - 2);
    if (!VariableByName(name, &v)) {
      *why = "unknown variable ${" + std::string(name) +
             "} (client_address, request_id, listener, tls_version, tls_sni)";
      return false;
    }
  }
  return true;
}

void CheckHeaderChanges(const zproxy::v1::HeaderChanges& changes, const std::string& path,
                        PolicyErrors* errors) {
  Checker c{errors};
  auto check_name = [&](const std::string& field_path, const std::string& name) {
    if (!IsFieldName(name)) {
      c.Error(field_path, "invalid header name " + Quote(name));
    } else if (IsProtectedField(name)) {
      c.Error(field_path, Quote(name) +
                              " is a hop-by-hop or framing field (or Host): it cannot be changed "
                              "by header rules");
    }
  };
  auto check_map = [&](const std::string& which,
                       const google::protobuf::Map<std::string, std::string>& m) {
    // Sorted: a stable order of errors for a map whose order protobuf does not keep.
    std::set<std::string> names;
    for (const auto& [name, value] : m) names.insert(name);
    for (const std::string& name : names) {
      std::string fp = path + "." + which + "[\"" + name + "\"]";
      check_name(fp, name);
      const std::string& value = m.at(name);
      std::string why;
      if (!IsFieldValue(value)) {
        c.Error(fp, "value holds CR, LF or NUL");
      } else if (!CheckVariables(value, &why)) {
        c.Error(fp, why);
      }
    }
  };
  check_map("set", changes.set());
  check_map("add", changes.add());
  for (int i = 0; i < changes.remove_size(); ++i) {
    check_name(path + ".remove[" + std::to_string(i) + "]", changes.remove(i));
  }
}

bool Forwards(const zproxy::v1::Route& route) {
  return !route.has_redirect() && !route.https_redirect() && !route.has_direct_response();
}

void CheckRoute(const zproxy::v1::Route& r, const std::string& path, PolicyErrors* errors) {
  Checker c{errors};
  CheckMatch(r.match(), path + ".match", &c);
  int answers = r.has_redirect() + r.https_redirect() + r.has_direct_response();
  if (answers > 1) {
    c.Error(path, "give at most one of redirect, https_redirect and direct_response");
  }
  if (answers > 0) {
    if (!r.cluster().empty()) {
      c.Error(path + ".cluster",
              "a route that answers itself (redirect or direct_response) has no cluster");
    }
    for (const char* forward_only : {"prefix_rewrite", "regex_rewrite", "request_headers",
                                     "host_rewrite", "retry", "timeout_ms"}) {
      const auto* f = r.GetDescriptor()->FindFieldByName(forward_only);
      if (r.GetReflection()->HasField(r, f)) {
        c.Error(path + "." + forward_only,
                "applies to forwarded requests; this route answers "
                "itself (redirect or direct_response)");
      }
    }
  }
  if (r.has_redirect()) CheckRedirect(r, path, &c);
  if (r.has_direct_response()) CheckDirectResponse(r, path, &c);
  if (!r.prefix_rewrite().empty()) {
    if (!IsPathText(r.prefix_rewrite())) {
      c.Error(path + ".prefix_rewrite", "must start with '/' and hold no spaces, '?' or '#', got " +
                                            Quote(r.prefix_rewrite()));
    }
    if (r.match().prefix().empty() && r.match().path().empty()) {
      c.Error(path + ".prefix_rewrite",
              "replaces the matched prefix: the route needs match.prefix or match.path");
    }
  }
  if (r.has_regex_rewrite()) {
    const auto& rr = r.regex_rewrite();
    int groups = 0;
    std::string why = RegexError(rr.pattern(), &groups);
    if (rr.pattern().empty()) {
      c.Error(path + ".regex_rewrite.pattern", "a pattern is required");
    } else if (!why.empty()) {
      c.Error(path + ".regex_rewrite.pattern", "invalid RE2 pattern: " + why);
    } else if (RE2::MaxSubmatch(rr.substitution()) > groups) {
      c.Error(path + ".regex_rewrite.substitution",
              "refers to group \\" + std::to_string(RE2::MaxSubmatch(rr.substitution())) +
                  " but the pattern has " + std::to_string(groups));
    }
  }
  if (r.has_request_headers())
    CheckHeaderChanges(r.request_headers(), path + ".request_headers", errors);
  if (r.has_response_headers()) {
    CheckHeaderChanges(r.response_headers(), path + ".response_headers", errors);
  }
  if (r.has_retry()) CheckRetry(r, path, &c);
  if (r.has_rate_limit()) CheckRateLimit(r, path, &c);
}

void CheckClusterPolicy(const zproxy::v1::Cluster& cluster, const std::string& path,
                        PolicyErrors* errors) {
  Checker c{errors};
  if (cluster.has_request_headers()) {
    CheckHeaderChanges(cluster.request_headers(), path + ".request_headers", errors);
  }
  if (cluster.has_response_headers()) {
    CheckHeaderChanges(cluster.response_headers(), path + ".response_headers", errors);
  }
  if (cluster.retry_budget_percent() > 100) {
    c.Error(path + ".retry_budget_percent",
            "must be 0..100, got " + std::to_string(cluster.retry_budget_percent()));
  }
}

}  // namespace zproxy::route_policy
