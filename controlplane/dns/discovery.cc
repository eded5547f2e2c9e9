#include "controlplane/dns/discovery.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <set>

#include "common/log.h"
#include "controlplane/config/defaults.h"
#include "controlplane/dns/expand.h"

namespace zproxy::dns {

namespace {

std::string Label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

}  // namespace

std::unique_ptr<Discovery> Discovery::Start(const zproxy::v1::Config& config,
                                            CurrentConfigFn current, std::string* error) {
  std::unique_ptr<Discovery> d(new Discovery());
  d->timeout_ms_ =
      config.dns().timeout_ms() != 0 ? config.dns().timeout_ms() : config::Defaults::kDnsTimeoutMs;
  std::vector<std::string> resolvers(config.dns().resolvers().begin(),
                                     config.dns().resolvers().end());
  d->lookup_ = AresLookup::Create(resolvers, d->timeout_ms_, error);
  if (d->lookup_ == nullptr) return nullptr;
  d->wake_fd_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!d->wake_fd_.valid()) {
    *error = "dns: eventfd failed";
    return nullptr;
  }
  d->current_ = std::move(current);
  d->thread_ = std::thread([p = d.get()] { p->Loop(); });
  d->notifier_ = std::thread([p = d.get()] { p->NotifyLoop(); });
  return d;
}

Discovery::~Discovery() { Stop(); }

void Discovery::Stop() {
  if (stop_.exchange(true)) return;
  Wake();
  notify_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (notifier_.joinable()) notifier_.join();
  lookup_.reset();
}

void Discovery::OnChange(ChangedFn changed) {
  std::lock_guard<std::mutex> lock(mu_);
  changed_ = std::move(changed);
  notify_cv_.notify_all();
}

int64_t Discovery::NowMs() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Discovery::Wake() {
  uint64_t one = 1;
  ssize_t n = write(wake_fd_.get(), &one, sizeof(one));
  (void)n;  // a full counter already wakes the loop
}

void Discovery::EnsureLookedUp(const zproxy::v1::Config& config) {
  std::vector<NameRef> refs = NamesOf(config);
  if (refs.empty()) return;
  std::unique_lock<std::mutex> lock(mu_);
  table_.Track(refs, /*prune=*/false);
  Wake();
  auto all_looked_up = [&] {
    for (const NameRef& r : refs) {
      const NameState* s = table_.Find(r.cluster, r.host);
      if (s != nullptr && !s->looked_up) return false;
    }
    return true;
  };
  // Two tries of half the timeout each, plus scheduling slack.
  outcome_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms_ + 500), all_looked_up);
}

void Discovery::Expand(zproxy::v1::Config* view) const {
  std::lock_guard<std::mutex> lock(mu_);
  ExpandNamedEndpoints(table_, view);
}

bool Discovery::HasNames() const {
  std::lock_guard<std::mutex> lock(mu_);
  return !table_.entries().empty();
}

std::vector<Discovery::NameInfo> Discovery::Names() const {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = NowMs();
  std::vector<NameInfo> out;
  for (const auto& [key, s] : table_.entries()) {
    out.push_back(NameInfo{key.first, key.second, s.ips, NameTable::Describe(s, now)});
  }
  return out;
}

std::string Discovery::PrometheusText() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (table_.entries().empty()) return "";
  std::string addresses, stale, lookups, changes;
  for (const auto& [key, s] : table_.entries()) {
    const std::string labels =
        "cluster=\"" + Label(key.first) + "\",name=\"" + Label(key.second) + "\"";
    addresses +=
        "zproxy_upstream_dns_addresses{" + labels + "} " + std::to_string(s.ips.size()) + "\n";
    stale += "zproxy_upstream_dns_stale{" + labels + "} " +
             std::string(s.failing_since_ms >= 0 && !s.ips.empty() ? "1" : "0") + "\n";
    lookups += "zproxy_upstream_dns_lookups_total{" + labels + ",result=\"ok\"} " +
               std::to_string(s.lookups_ok) + "\n";
    lookups += "zproxy_upstream_dns_lookups_total{" + labels + ",result=\"failed\"} " +
               std::to_string(s.lookups_failed) + "\n";
    changes +=
        "zproxy_upstream_dns_changes_total{" + labels + "} " + std::to_string(s.changes) + "\n";
  }
  return "# HELP zproxy_upstream_dns_addresses Addresses a host-name endpoint resolves to now "
         "(stale "
         "ones included).\n# TYPE zproxy_upstream_dns_addresses gauge\n" +
         addresses +
         "# HELP zproxy_upstream_dns_stale 1 while a name that stopped resolving is served from "
         "its "
         "last addresses.\n# TYPE zproxy_upstream_dns_stale gauge\n" +
         stale +
         "# HELP zproxy_upstream_dns_lookups_total Lookups of host-name endpoints by zproxyd, by "
         "result.\n# TYPE zproxy_upstream_dns_lookups_total counter\n" +
         lookups +
         "# HELP zproxy_upstream_dns_changes_total Times a host-name endpoint's address set "
         "changed.\n"
         "# TYPE zproxy_upstream_dns_changes_total counter\n" +
         changes;
}

void Discovery::Loop() {
  while (!stop_.load()) {
    int wait_ms = 1000;  // at least once a second: a newly published config is noticed
    std::vector<std::pair<NameKey, Family>> starts;
    {
      std::unique_lock<std::mutex> lock(mu_);
      std::shared_ptr<const zproxy::v1::Config> cur = current_ ? current_() : nullptr;
      if (cur != nullptr && cur.get() != tracked_config_) {
        table_.Track(NamesOf(*cur), /*prune=*/true);
        tracked_config_ = cur.get();
        tracked_hold_ = std::move(cur);
      }
      const int64_t now = NowMs();
      for (const NameKey& key : table_.Due(now)) {
        table_.MarkInFlight(key);
        starts.emplace_back(key, table_.Find(key.first, key.second)->settings.family);
      }
      std::vector<std::string> logs;
      if (table_.ExpireStale(now, &logs)) {
        dirty_ = true;
        notify_cv_.notify_all();
      }
      for (const std::string& l : logs) ZLOG_WARN("%s", l.c_str());
      const int64_t next = table_.NextDeadline();
      if (next != INT64_MAX) {
        wait_ms = static_cast<int>(std::clamp<int64_t>(next - now, 0, wait_ms));
      }
    }
    // Outside the lock: c-ares may answer at once (/etc/hosts, a refused socket), calling
    // OnLookupDone from inside Start.
    for (const auto& [key, family] : starts) {
      lookup_->Start(key.second, family,
                     [this, key = key](const LookupOutcome& o) { OnLookupDone(key, o); });
    }
    if (!starts.empty()) continue;  // Due again: new lookups get their sockets polled
    lookup_->Run(wait_ms, wake_fd_.get());
    uint64_t drained;
    while (read(wake_fd_.get(), &drained, sizeof(drained)) > 0) {
    }
  }
}

void Discovery::OnLookupDone(const NameKey& key, const LookupOutcome& o) {
  std::string log;
  bool changed;
  {
    std::lock_guard<std::mutex> l(mu_);
    changed = table_.OnOutcome(key, o, NowMs(), &log);
    if (changed) dirty_ = true;
  }
  if (!log.empty()) {
    if (o.ok && !o.ips.empty()) {
      ZLOG_INFO("%s", log.c_str());
    } else {
      ZLOG_WARN("%s", log.c_str());
    }
  }
  outcome_cv_.notify_all();
  if (changed) notify_cv_.notify_all();
}

void Discovery::NotifyLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_.load()) {
    // Without a `changed` yet (start-up) there is nobody to tell: the first data plane is
    // built from the table as it is then.
    notify_cv_.wait_for(lock, std::chrono::seconds(1),
                        [this] { return stop_.load() || (dirty_ && changed_); });
    if (stop_.load()) break;
    if (!dirty_ || !changed_) continue;
    dirty_ = false;
    ChangedFn changed = changed_;
    lock.unlock();
    const bool ok = changed();
    lock.lock();
    if (!ok) {
      dirty_ = true;  // the push failed: again in a second
      notify_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_.load(); });
    }
  }
}

}  // namespace zproxy::dns
