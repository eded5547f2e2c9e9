// What one cluster's host-name endpoints resolve with: the top-level `dns` block, the
// cluster's overrides, then the defaults (config/defaults.h). Pure.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "zproxy/v1/config.pb.h"

namespace zproxy::dns {

enum class Family { kAny, kV4, kV6 };

struct DnsSettings {
  uint32_t min_refresh_ms = 0;
  uint32_t max_refresh_ms = 0;
  uint32_t failure_refresh_ms = 0;
  uint32_t stale_ms = 0;
  uint32_t timeout_ms = 0;
  Family family = Family::kAny;

  bool operator==(const DnsSettings&) const = default;
};

DnsSettings EffectiveDns(const zproxy::v1::Config& config, const zproxy::v1::Cluster& cluster);

// "any" / "v4" / "v6" ("" = any); false for anything else.
bool ParseFamily(const std::string& text, Family* out);
const char* FamilyName(Family f);

// A cluster endpoint given by host name: its host and port. False for an IP literal (or
// an address that does not parse, which validation reports).
bool NamedEndpoint(const std::string& address, std::string* host, uint16_t* port);

// The (cluster, host) pairs of every host-name endpoint of `config`, draining ones too.
struct NameRef {
  std::string cluster;
  std::string host;
  DnsSettings settings;
};
std::vector<NameRef> NamesOf(const zproxy::v1::Config& config);

}  // namespace zproxy::dns
