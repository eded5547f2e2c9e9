#include "controlplane/dns/dns_settings.h"

#include <set>
#include <utility>

#include "common/net_address.h"
#include "controlplane/config/defaults.h"

namespace zproxy::dns {

using config::Defaults;

namespace {

uint32_t Pick(uint32_t cluster_value, uint32_t top_value, uint32_t fallback) {
  if (cluster_value != 0) return cluster_value;
  if (top_value != 0) return top_value;
  return fallback;
}

}  // namespace

DnsSettings EffectiveDns(const zproxy::v1::Config& config, const zproxy::v1::Cluster& cluster) {
  const zproxy::v1::DnsDiscovery& top = config.dns();
  const zproxy::v1::DnsDiscovery& own = cluster.dns();
  DnsSettings s;
  s.min_refresh_ms = Pick(own.min_refresh_ms(), top.min_refresh_ms(), Defaults::kDnsMinRefreshMs);
  s.max_refresh_ms = Pick(own.max_refresh_ms(), top.max_refresh_ms(), Defaults::kDnsMaxRefreshMs);
  s.failure_refresh_ms =
      Pick(own.failure_refresh_ms(), top.failure_refresh_ms(), Defaults::kDnsFailureRefreshMs);
  s.stale_ms = Pick(own.stale_ms(), top.stale_ms(), Defaults::kDnsStaleMs);
  s.timeout_ms = Pick(0, top.timeout_ms(), Defaults::kDnsTimeoutMs);
  const std::string& family = !own.family().empty() ? own.family() : top.family();
  if (!ParseFamily(family, &s.family)) s.family = Family::kAny;  // validation refused it
  return s;
}

bool ParseFamily(const std::string& text, Family* out) {
  if (text.empty() || text == "any") {
    *out = Family::kAny;
  } else if (text == "v4") {
    *out = Family::kV4;
  } else if (text == "v6") {
    *out = Family::kV6;
  } else {
    return false;
  }
  return true;
}

const char* FamilyName(Family f) {
  switch (f) {
    case Family::kV4:
      return "v4";
    case Family::kV6:
      return "v6";
    case Family::kAny:
      break;
  }
  return "any";
}

bool NamedEndpoint(const std::string& address, std::string* host, uint16_t* port) {
  std::string error;
  if (!SplitHostPort(address, host, port, &error)) return false;
  return !IsIpLiteral(*host);
}

std::vector<NameRef> NamesOf(const zproxy::v1::Config& config) {
  std::vector<NameRef> out;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& c : config.clusters()) {
    for (const auto& e : c.endpoints()) {
      std::string host;
      uint16_t port = 0;
      if (!NamedEndpoint(e.address(), &host, &port)) continue;
      if (seen.emplace(c.name(), host).second) {
        out.push_back(NameRef{c.name(), host, EffectiveDns(config, c)});
      }
    }
  }
  return out;
}

}  // namespace zproxy::dns
