#include "controlplane/dns/name_table.h"

#include <algorithm>
#include <climits>
#include <set>

namespace zproxy::dns {

namespace {

std::string Join(const std::vector<std::string>& ips) {
  std::string out;
  for (const std::string& ip : ips) {
    if (!out.empty()) out += ", ";
    out += ip;
  }
  return out.empty() ? "none" : out;
}

std::string Seconds(int64_t ms) { return std::to_string((ms + 999) / 1000) + " s"; }

}  // namespace

void NameTable::Track(const std::vector<NameRef>& refs, bool prune) {
  std::set<NameKey> listed;
  for (const NameRef& r : refs) {
    NameKey key{r.cluster, r.host};
    listed.insert(key);
    NameState& s = names_[key];  // a new name: next_lookup_ms 0, due at once
    s.settings = r.settings;
  }
  if (!prune) return;
  for (auto it = names_.begin(); it != names_.end();) {
    it = listed.count(it->first) != 0 ? std::next(it) : names_.erase(it);
  }
}

std::vector<NameKey> NameTable::Due(int64_t now_ms) const {
  std::vector<NameKey> due;
  for (const auto& [key, s] : names_) {
    if (!s.in_flight && s.next_lookup_ms <= now_ms) due.push_back(key);
  }
  return due;
}

void NameTable::MarkInFlight(const NameKey& key) {
  auto it = names_.find(key);
  if (it != names_.end()) it->second.in_flight = true;
}

bool NameTable::OnOutcome(const NameKey& key, const LookupOutcome& o, int64_t now_ms,
                          std::string* log) {
  auto it = names_.find(key);
  if (it == names_.end()) return false;  // forgotten while its lookup ran
  NameState& s = it->second;
  const std::string name = key.second + " (cluster " + key.first + ")";
  const bool first = !s.looked_up;
  s.in_flight = false;
  s.looked_up = true;
  if (!o.ok || o.ips.empty()) {
    s.lookups_failed++;
    s.last_error = o.ok ? "no " +
                              std::string(s.settings.family == Family::kV4   ? "A"
                                          : s.settings.family == Family::kV6 ? "AAAA"
                                                                             : "A/AAAA") +
                              " records"
                        : o.error;
    s.next_lookup_ms = now_ms + s.settings.failure_refresh_ms;
    if (s.failing_since_ms < 0) {
      s.failing_since_ms = now_ms;
      if (s.ips.empty()) {
        *log = "dns: " + name + ": " + s.last_error + "; no addresses";
      } else {
        *log = "dns: " + name + ": " + s.last_error + "; keeping its last addresses (" +
               Join(s.ips) + ") for up to " + Seconds(s.settings.stale_ms);
      }
    }
    return false;
  }
  std::vector<std::string> ips = o.ips;
  std::sort(ips.begin(), ips.end());
  ips.erase(std::unique(ips.begin(), ips.end()), ips.end());
  s.lookups_ok++;
  s.ttl_s = o.ttl_s;
  const uint64_t ttl_ms = static_cast<uint64_t>(o.ttl_s) * 1000;
  const uint64_t wait =
      std::clamp<uint64_t>(ttl_ms, s.settings.min_refresh_ms,
                           std::max(s.settings.min_refresh_ms, s.settings.max_refresh_ms));
  s.next_lookup_ms = now_ms + static_cast<int64_t>(wait);
  const bool recovered = s.failing_since_ms >= 0;
  s.failing_since_ms = -1;
  s.last_error.clear();
  const bool changed = ips != s.ips;
  if (changed) {
    *log = "dns: " + name + (first ? ": " : ": now ") + Join(ips) + " (TTL " +
           std::to_string(o.ttl_s) + " s" + (recovered ? ", resolving again" : "") + ")";
    s.ips = std::move(ips);
    s.changes++;
  } else if (recovered) {
    *log = "dns: " + name + ": resolving again, addresses unchanged (" + Join(s.ips) + ")";
  }
  return changed;
}

bool NameTable::ExpireStale(int64_t now_ms, std::vector<std::string>* logs) {
  bool any = false;
  for (auto& [key, s] : names_) {
    if (s.failing_since_ms < 0 || s.ips.empty()) continue;
    if (now_ms - s.failing_since_ms < static_cast<int64_t>(s.settings.stale_ms)) continue;
    logs->push_back("dns: " + key.second + " (cluster " + key.first + "): " + s.last_error +
                    " for " + Seconds(now_ms - s.failing_since_ms) + ": dropping its stale " +
                    "addresses (" + Join(s.ips) + ")");
    s.ips.clear();
    s.changes++;
    any = true;
  }
  return any;
}

int64_t NameTable::NextDeadline() const {
  int64_t next = INT64_MAX;
  for (const auto& [key, s] : names_) {
    if (!s.in_flight) next = std::min(next, s.next_lookup_ms);
    if (s.failing_since_ms >= 0 && !s.ips.empty()) {
      next = std::min(next, s.failing_since_ms + static_cast<int64_t>(s.settings.stale_ms));
    }
  }
  return next;
}

const NameState* NameTable::Find(const std::string& cluster, const std::string& host) const {
  auto it = names_.find(NameKey{cluster, host});
  return it == names_.end() ? nullptr : &it->second;
}

std::string NameTable::Describe(const NameState& s, int64_t now_ms) {
  if (!s.looked_up) return "not looked up yet";
  const std::string count =
      std::to_string(s.ips.size()) + (s.ips.size() == 1 ? " address" : " addresses");
  if (s.failing_since_ms < 0) {
    return count + ", TTL " + std::to_string(s.ttl_s) + " s, next lookup in " +
           Seconds(std::max<int64_t>(0, s.next_lookup_ms - now_ms));
  }
  std::string out = s.last_error + " since " + Seconds(now_ms - s.failing_since_ms) + " ago";
  if (s.ips.empty()) return out + "; no addresses";
  const int64_t left = s.failing_since_ms + s.settings.stale_ms - now_ms;
  return out + "; keeping " + count + " (stale) for " + Seconds(std::max<int64_t>(0, left)) +
         " more";
}

}  // namespace zproxy::dns
