#include "dataplane/routing/route_table.h"

#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>

#include "common/route_policy_rules.h"

namespace zproxy::routing {
namespace {

// RFC 9110 tchar, the alphabet of a method token.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  for (char t : std::string_view("!#$%&'*+-.^_`|~")) {
    if (c == t) return true;
  }
  return false;
}

std::shared_ptr<const RE2> CompileRegex(const std::string& pattern) {
  RE2::Options options;
  options.set_log_errors(false);
  auto re = std::make_shared<RE2>(pattern, options);
  return re->ok() ? re : nullptr;
}

bool SameNameIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// The first value of parameter `name` in a raw query ("a=1&b=2"); a name without '='
// has an empty value.
bool FindQueryParam(std::string_view query, std::string_view name, std::string_view* value) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      *value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return true;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

bool ValidateMethod(const std::string& m, std::string* why) {
  if (m.empty()) {
    *why = "empty method";
    return false;
  }
  for (char c : m) {
    if (!IsTokenChar(c)) {
      *why = "method \"" + m + "\" is not an HTTP token";
      return false;
    }
  }
  return true;
}

}  // namespace

void RouteTable::IndexHosts(CompiledListener* listener) {
  // std::map: sorted keys for the binary search, built once per snapshot.
  std::map<std::string, std::vector<uint32_t>, std::less<>> exact, wildcard;
  for (uint32_t pos = 0; pos < listener->routes.size(); ++pos) {
    const CompiledRoute& route = listener->routes[pos];
    if (route.hosts.empty()) listener->any_host_routes.push_back(pos);
    for (const HostPattern& pattern : route.hosts) {
      std::vector<uint32_t>& list = (pattern.wildcard() ? wildcard : exact)[pattern.key()];
      // A route listing the same host twice appears once.
      if (list.empty() || list.back() != pos) list.push_back(pos);
    }
  }
  for (auto& [key, routes] : exact) listener->exact_hosts.push_back({key, std::move(routes)});
  for (auto& [key, routes] : wildcard) {
    listener->wildcard_hosts.push_back({key, std::move(routes)});
  }
}

std::shared_ptr<const RouteTable> RouteTable::Build(const zproxy::v1::Config& config,
                                                    std::string* error) {
  std::unordered_map<std::string_view, uint32_t> cluster_by_name;
  for (int i = 0; i < config.clusters_size(); ++i) {
    const std::string& name = config.clusters(i).name();
    if (name.empty()) continue;  // cannot be referenced; cluster validation reports it
    if (!cluster_by_name.emplace(name, static_cast<uint32_t>(i)).second) {
      *error = "clusters[" + std::to_string(i) + "].name: duplicate cluster name \"" + name + "\"";
      return nullptr;
    }
  }

  std::shared_ptr<RouteTable> table(new RouteTable());
  table->listeners_.resize(config.listeners_size());
  uint32_t stat_index = 0;
  uint32_t rate_limits = 0;
  for (int li = 0; li < config.listeners_size(); ++li) {
    const zproxy::v1::Listener& listener = config.listeners(li);
    CompiledListener& out = table->listeners_[li];
    out.routes.reserve(listener.routes_size());
    for (int ri = 0; ri < listener.routes_size(); ++ri) {
      const zproxy::v1::Route& route = listener.routes(ri);
      const zproxy::v1::RouteMatch& match = route.match();
      const std::string field =
          "listeners[" + std::to_string(li) + "].routes[" + std::to_string(ri) + "]";
      std::string why;

      CompiledRoute compiled;
      // The same rules as zproxyd's validation (common/route_policy_rules.h): whatever
      // `zproxyd --check` accepts builds here, and nothing else.
      route_policy::PolicyErrors policy_errors;
      route_policy::CheckRoute(route, field, &policy_errors);
      if (!policy_errors.empty()) {
        *error = policy_errors[0].path + ": " + policy_errors[0].message;
        return nullptr;
      }
      const bool forwards = route_policy::Forwards(route);
      auto cluster = cluster_by_name.find(route.cluster());
      if (forwards && route.cluster().empty()) {
        *error = field + ".cluster: required";
        return nullptr;
      }
      if (forwards && cluster == cluster_by_name.end()) {
        *error = field + ".cluster: unknown cluster \"" + route.cluster() + "\"";
        return nullptr;
      }

      // At most one of path/prefix; neither means any path. These rules mirror
      // controlplane/config/validate.cc on purpose: whatever `zproxyd --check` accepts
      // must build here, or the data plane would NACK a snapshot the user was told is valid.
      if (!match.path().empty() && !match.prefix().empty()) {
        *error = field + ".match: set either path or prefix, not both";
        return nullptr;
      }
      compiled.exact_path = !match.path().empty();
      compiled.path = compiled.exact_path ? match.path() : match.prefix();  // "" prefix = all
      if (!compiled.path.empty() && compiled.path.front() != '/') {
        *error = field + ".match." + (compiled.exact_path ? "path" : "prefix") + ": \"" +
                 compiled.path + "\" must start with \"/\"";
        return nullptr;
      }

      for (int hi = 0; hi < match.hosts_size(); ++hi) {
        HostPattern pattern;
        if (!HostPattern::Compile(match.hosts(hi), &pattern, &why)) {
          *error = field + ".match.hosts[" + std::to_string(hi) + "]: " + why;
          return nullptr;
        }
        compiled.hosts.push_back(std::move(pattern));
      }
      for (int mi = 0; mi < match.methods_size(); ++mi) {
        if (!ValidateMethod(match.methods(mi), &why)) {
          *error = field + ".match.methods[" + std::to_string(mi) + "]: " + why;
          return nullptr;
        }
        compiled.methods.push_back(match.methods(mi));
      }

      if (!match.regex().empty()) compiled.path_regex = CompileRegex(match.regex());
      for (int hi = 0; hi < match.headers_size(); ++hi) {
        const auto& h = match.headers(hi);
        HeaderCondition c;
        c.name = h.name();
        c.invert = h.invert();
        if (!h.exact().empty()) {
          c.kind = HeaderCondition::kExact;
          c.value = h.exact();
        } else if (!h.prefix().empty()) {
          c.kind = HeaderCondition::kPrefix;
          c.value = h.prefix();
        } else if (!h.regex().empty()) {
          c.kind = HeaderCondition::kRegex;
          c.regex = CompileRegex(h.regex());
        } else {
          c.kind = h.has_present() && !h.present() ? HeaderCondition::kAbsent
                                                   : HeaderCondition::kPresent;
        }
        compiled.headers.push_back(std::move(c));
      }
      for (int qi = 0; qi < match.query_params_size(); ++qi) {
        const auto& q = match.query_params(qi);
        HeaderCondition c;
        c.name = q.name();
        if (!q.exact().empty()) {
          c.kind = HeaderCondition::kExact;
          c.value = q.exact();
        } else if (!q.regex().empty()) {
          c.kind = HeaderCondition::kRegex;
          c.regex = CompileRegex(q.regex());
        } else {
          c.kind = q.has_present() && !q.present() ? HeaderCondition::kAbsent
                                                   : HeaderCondition::kPresent;
        }
        compiled.query_params.push_back(std::move(c));
      }

      compiled.entry.cluster_index = forwards ? cluster->second : 0;
      compiled.entry.cluster_name = forwards ? route.cluster() : std::string();
      compiled.entry.policy = RoutePolicy::Compile(route, &rate_limits);
      compiled.entry.host_rewrite = route.host_rewrite();
      compiled.entry.listener_index = static_cast<uint32_t>(li);
      compiled.entry.route_index = static_cast<uint32_t>(ri);
      compiled.entry.stat_index = stat_index++;
      out.routes.push_back(std::move(compiled));
    }
    IndexHosts(&out);
  }
  table->route_count_ = stat_index;
  table->rate_limit_count_ = rate_limits;
  return table;
}

const std::vector<uint32_t>* RouteTable::FindBucket(const std::vector<HostBucket>& buckets,
                                                    std::string_view key) {
  auto it = std::lower_bound(buckets.begin(), buckets.end(), key,
                             [](const HostBucket& b, std::string_view k) { return b.key < k; });
  return it != buckets.end() && it->key == key ? &it->routes : nullptr;
}

bool RouteTable::ConditionHolds(const HeaderCondition& c, bool found, std::string_view value) {
  bool holds = false;
  switch (c.kind) {
    case HeaderCondition::kPresent:
      holds = found;
      break;
    case HeaderCondition::kAbsent:
      holds = !found;
      break;
    case HeaderCondition::kExact:
      holds = found && value == c.value;
      break;
    case HeaderCondition::kPrefix:
      holds = found && value.starts_with(c.value);
      break;
    case HeaderCondition::kRegex:
      holds = found && c.regex != nullptr &&
              RE2::FullMatch(re2::StringPiece(value.data(), value.size()), *c.regex);
      break;
  }
  return holds != c.invert;
}

bool RouteTable::RequestMatches(const CompiledRoute& route, const RequestView& request) {
  const std::string_view path = request.path;
  if (route.path_regex != nullptr) {
    if (!RE2::FullMatch(re2::StringPiece(path.data(), path.size()), *route.path_regex)) {
      return false;
    }
  } else if (route.exact_path ? path != route.path : !path.starts_with(route.path)) {
    return false;
  }
  if (!route.methods.empty() && std::find(route.methods.begin(), route.methods.end(),
                                          request.method) == route.methods.end()) {
    return false;
  }
  for (const HeaderCondition& c : route.headers) {
    const http::Field* field = nullptr;
    for (const http::Field& f : request.fields) {
      if (SameNameIgnoreCase(f.name, c.name)) {
        field = &f;
        break;
      }
    }
    if (!ConditionHolds(c, field != nullptr, field ? field->value : std::string_view())) {
      return false;
    }
  }
  for (const HeaderCondition& c : route.query_params) {
    std::string_view value;
    bool found = FindQueryParam(request.query, c.name, &value);
    if (!ConditionHolds(c, found, value)) return false;
  }
  return true;
}

const RouteEntry* RouteTable::Match(uint32_t listener_index, const RequestView& request) const {
  const std::string_view host = request.host;
  if (listener_index >= listeners_.size()) return nullptr;
  const CompiledListener& listener = listeners_[listener_index];

  // Gather the candidate lists: any-host routes, the exact host's bucket, and one bucket
  // per wildcard suffix of the host (".b.example.com", ".example.com", ".com" for
  // "a.b.example.com"; never the whole host, so "*.example.com" skips "example.com").
  // A normalized host has at most kMaxHostLength / 2 dots, so the arrays cannot overflow.
  struct Cursor {
    const uint32_t* it;
    const uint32_t* end;
  };
  std::array<Cursor, kMaxHostLength / 2 + 3> lists;
  size_t n = 0;
  auto add = [&](const std::vector<uint32_t>* v) {
    if (v != nullptr && !v->empty()) lists[n++] = {v->data(), v->data() + v->size()};
  };
  add(&listener.any_host_routes);
  const NormalizedHost normalized(
      listener.exact_hosts.empty() && listener.wildcard_hosts.empty() ? std::string_view() : host);
  if (normalized.valid() && !normalized.view().empty()) {
    const std::string_view h = normalized.view();
    add(FindBucket(listener.exact_hosts, h));
    if (!listener.wildcard_hosts.empty()) {
      for (size_t dot = h.find('.', 1); dot != std::string_view::npos; dot = h.find('.', dot + 1)) {
        add(FindBucket(listener.wildcard_hosts, h.substr(dot)));
      }
    }
  }

  // Merge in ascending route position: the first candidate whose path and method match
  // is the first route in config order that matches the whole request.
  while (true) {
    uint32_t next = UINT32_MAX;
    for (size_t i = 0; i < n; ++i) {
      if (lists[i].it != lists[i].end) next = std::min(next, *lists[i].it);
    }
    if (next == UINT32_MAX) return nullptr;
    for (size_t i = 0; i < n; ++i) {
      if (lists[i].it != lists[i].end && *lists[i].it == next) ++lists[i].it;
    }
    const CompiledRoute& route = listener.routes[next];
    if (RequestMatches(route, request)) return &route.entry;
  }
}

}  // namespace zproxy::routing
