#include "tools/zproxyctl_health.h"

#include <cstdio>
#include <map>

#include "tools/zproxyctl_table.h"

namespace zproxy::ctl {

std::string FormatAge(int64_t ms) {
  if (ms < 0) return "-";
  char buf[32];
  const int64_t s = ms / 1000;
  if (s < 1) {
    std::snprintf(buf, sizeof(buf), "%lldms", static_cast<long long>(ms));
  } else if (s < 60) {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else if (s < 86400) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh", static_cast<long long>(s / 86400),
                  static_cast<long long>(s % 86400 / 3600));
  }
  return buf;
}

namespace {

std::string State(const v1::EndpointHealthStatus& e) {
  std::string s = e.healthy() ? "healthy" : "UNHEALTHY";
  if (e.draining()) s += ",draining";
  return s;
}

// How long the current state has held: since the last transition, else since checking
// began (shown with a leading ">", since the state is at least that old).
std::string Since(const v1::EndpointHealthStatus& e, int64_t now) {
  if (e.source() != v1::HEALTH_SOURCE_ACTIVE_CHECK) return "-";
  if (e.last_transition_unix_ms() != 0) return FormatAge(now - e.last_transition_unix_ms());
  if (e.checking_since_unix_ms() != 0) return ">" + FormatAge(now - e.checking_since_unix_ms());
  return "-";
}

std::string LastCheck(const v1::EndpointHealthStatus& e, int64_t now) {
  if (e.source() != v1::HEALTH_SOURCE_ACTIVE_CHECK) return "-";
  if (e.last_check_unix_ms() == 0) return "not yet";
  return FormatAge(now - e.last_check_unix_ms()) + " ago " + (e.last_check_ok() ? "ok" : "failed");
}

std::string Reason(const v1::EndpointHealthStatus& e) {
  if (e.source() == v1::HEALTH_SOURCE_NO_CHECK) return "no health_check";
  std::string r = e.last_check_reason().empty() ? "-" : e.last_check_reason();
  if (e.consecutive_failures() > 1) {
    r += " (" + std::to_string(e.consecutive_failures()) + " in a row)";
  }
  return r;
}

}  // namespace

std::string RenderHealthTable(const v1::HealthResponse& r) {
  Table t({"CLUSTER", "ENDPOINT", "STATE", "SINCE", "LAST-CHECK", "REASON"});
  const int64_t now = r.unix_time_ms();
  for (const auto& e : r.endpoints()) {
    // A host-name endpoint: the address it resolved to, and the name.
    const std::string endpoint = e.hostname().empty() || e.hostname() == e.address()
                                     ? e.address() + (e.hostname().empty() ? "" : " (no address)")
                                     : e.address() + " (" + e.hostname() + ")";
    t.Add({e.cluster(), endpoint, State(e), Since(e, now), LastCheck(e, now), Reason(e)});
  }
  std::string out = t.Render();
  std::map<std::string, std::string> dns;  // host-name endpoint -> its DNS state
  for (const auto& e : r.endpoints()) {
    if (!e.hostname().empty()) dns[e.cluster() + " " + e.hostname()] = e.dns();
  }
  for (const auto& [name, state] : dns) out += "dns: " + name + ": " + state + "\n";
  if (r.has_outlier_ejected() && r.outlier_ejected() > 0) {
    out += "note: " + std::to_string(r.outlier_ejected()) +
           " endpoint ejection(s) by passive outlier detection in the data plane's workers "
           "(which endpoints is not reported; zproxy_upstream_ejected)\n";
  }
  return out;
}

std::string HealthSummaryText(const v1::ClusterHealthSummary& s) {
  std::string out = std::to_string(s.healthy()) + "/" + std::to_string(s.endpoints()) + " healthy";
  if (s.draining() > 0) out += ", " + std::to_string(s.draining()) + " draining";
  return out;
}

std::string AddJsonMember(const std::string& object_json, const std::string& key,
                          const std::string& value_json) {
  const size_t close = object_json.rfind('}');
  if (close == std::string::npos) return object_json;
  size_t last = object_json.find_last_not_of(" \t\r\n", close - 1);
  const bool empty = last == std::string::npos || object_json[last] == '{';
  std::string out = object_json.substr(0, last == std::string::npos ? 0 : last + 1);
  out += (empty ? "\n \"" : ",\n \"") + key + "\": " + value_json + "\n}";
  out += object_json.substr(close + 1);
  return out;
}

}  // namespace zproxy::ctl
