// What zproxyd knows about each host-name endpoint: its addresses, when to look it up
// again, and how it fails. Pure (time is a parameter), so TTL clamping, failure backoff
// and the stale bound are unit-tested without a DNS server. Not thread-safe: Discovery
// holds the lock.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "controlplane/dns/dns_settings.h"

namespace zproxy::dns {

struct LookupOutcome {
  bool ok = false;
  std::vector<std::string> ips;  // literals without brackets; any order, duplicates allowed
  uint32_t ttl_s = 0;            // the smallest TTL of the answer
  std::string error;             // !ok: "NXDOMAIN", "timeout", "no A/AAAA records", ...
};

struct NameState {
  DnsSettings settings;
  std::vector<std::string> ips;  // what the data plane gets (sorted, unique; stale included)
  bool looked_up = false;        // a first outcome arrived
  bool in_flight = false;
  int64_t next_lookup_ms = 0;
  uint32_t ttl_s = 0;             // of the last good answer
  int64_t failing_since_ms = -1;  // -1: the last lookup answered
  std::string last_error;
  uint64_t lookups_ok = 0;
  uint64_t lookups_failed = 0;
  uint64_t changes = 0;  // times the address set changed
};

using NameKey = std::pair<std::string, std::string>;  // (cluster, host)

class NameTable {
 public:
  // The names `refs` lists are tracked from now on (new ones due at once, settings
  // updated); with `prune`, names not listed are forgotten.
  void Track(const std::vector<NameRef>& refs, bool prune);

  // Names due for a lookup at `now_ms` that have none in flight.
  std::vector<NameKey> Due(int64_t now_ms) const;
  void MarkInFlight(const NameKey& key);

  // A lookup finished. Returns true when the name's address set changed. *log gets one
  // line when the name's state changed (first answer, addresses, failing, recovered).
  bool OnOutcome(const NameKey& key, const LookupOutcome& outcome, int64_t now_ms,
                 std::string* log);
  // Names failing for longer than their stale_ms lose their addresses. True if any did.
  bool ExpireStale(int64_t now_ms, std::vector<std::string>* logs);

  // The earliest next lookup or stale expiry (INT64_MAX when nothing is tracked).
  int64_t NextDeadline() const;

  const NameState* Find(const std::string& cluster, const std::string& host) const;
  const std::map<NameKey, NameState>& entries() const { return names_; }

  // "2 addresses, TTL 30 s, next lookup in 12 s", "NXDOMAIN since 3 s; keeping 2 stale
  // addresses for 297 s more", "NXDOMAIN; no addresses", "not looked up yet".
  static std::string Describe(const NameState& s, int64_t now_ms);

 private:
  std::map<NameKey, NameState> names_;
};

}  // namespace zproxy::dns
