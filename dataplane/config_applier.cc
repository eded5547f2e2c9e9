#include "dataplane/config_applier.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/log.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {
namespace {

using google::protobuf::util::MessageDifferencer;

uint64_t NowUs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// What a running data plane cannot change without new sockets, rings or threads.
// Returns "" if `next` can be applied in place, else the reason naming the field.
std::string InPlaceBlocker(const zproxy::v1::Config& cur, const zproxy::v1::Config& next) {
  if (cur.listeners_size() != next.listeners_size()) {
    return "listeners: " + std::to_string(cur.listeners_size()) + " -> " +
           std::to_string(next.listeners_size()) + " listeners (new sockets are needed)";
  }
  for (int i = 0; i < cur.listeners_size(); i++) {
    const auto& a = cur.listeners(i);
    const auto& b = next.listeners(i);
    std::string field = "listeners[" + std::to_string(i) + "]";
    if (a.name() != b.name()) return field + ".name: changed";
    if (a.address() != b.address()) return field + ".address: changed (new sockets are needed)";
    if (a.has_tcp_proxy() != b.has_tcp_proxy()) return field + ": kind changed (http/tcp_proxy)";
  }
  // Workers size their head buffers for the largest head a listener allows.
  uint32_t cur_max = 0;
  for (const auto& l : cur.listeners()) cur_max = std::max(cur_max, l.http().max_header_bytes());
  for (int i = 0; i < next.listeners_size(); i++) {
    if (next.listeners(i).http().max_header_bytes() > std::max(cur_max, 65536u)) {
      return "listeners[" + std::to_string(i) + "].http.max_header_bytes: raised above what " +
             "the running workers allocated for";
    }
  }
  if (cur.workers() != next.workers()) return "workers: changed";
  if (!MessageDifferencer::Equals(cur.io_uring(), next.io_uring())) return "io_uring: changed";
  if (cur.metrics_address() != next.metrics_address()) return "metrics_address: changed";
  if (cur.access_log() != next.access_log()) return "access_log: changed";
  // Privileges are dropped once, at start: only a new data plane can run with others.
  if (cur.dataplane_user() != next.dataplane_user()) return "dataplane_user: changed";
  if (cur.dataplane_keep_privileges() != next.dataplane_keep_privileges()) {
    return "dataplane_keep_privileges: changed";
  }
  return "";
}

}  // namespace

ConfigApplier::ConfigApplier(std::vector<Worker*> workers, std::shared_ptr<const Snapshot> current,
                             std::shared_ptr<const HealthRegion> health_region,
                             HealthSlotTable health_slots, tls::TicketKeyStore* ticket_keys)
    : workers_(std::move(workers)),
      ticket_keys_(ticket_keys),
      health_region_(std::move(health_region)),
      health_slots_(std::move(health_slots)),
      current_(std::move(current)),
      generation_(current_->generation) {
  version_.store(current_->version);
}

bool ConfigApplier::PostAndWait(const std::shared_ptr<Snapshot>& next, uint64_t deadline_us,
                                std::string* error) {
  next->generation = ++generation_;
  for (Worker* w : workers_) w->PostSnapshot(next);
  // Workers pick the snapshot up at their next loop iteration (woken by an eventfd), so
  // this is normally a few microseconds.
  for (Worker* w : workers_) {
    while (w->applied_generation() < next->generation) {
      if (NowUs() > deadline_us) {
        *error = "worker " + std::to_string(w->index()) + " did not apply version " +
                 std::to_string(next->version) + " within the deadline";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  current_ = next;
  version_.store(next->version);
  return true;
}

ConfigApplier::Result ConfigApplier::RebindHealth(std::shared_ptr<const HealthRegion> region,
                                                  HealthSlotTable slots, uint32_t timeout_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  Result result;
  const uint64_t start = NowUs();
  std::string error;
  std::shared_ptr<Snapshot> next = BuildSnapshot(current_->config, current_->version, &error,
                                                 region, &slots, ticket_keys_, current_.get());
  if (next == nullptr) {
    result.reason = error;  // cannot happen for a config that is running; kept honest
    return result;
  }
  if (!PostAndWait(next, start + static_cast<uint64_t>(timeout_ms) * 1000, &result.reason)) {
    return result;
  }
  health_region_ = std::move(region);
  health_slots_ = std::move(slots);
  result.ok = true;
  result.apply_us = NowUs() - start;
  return result;
}

std::vector<ConfigApplier::SlotState> ConfigApplier::HealthStates() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<SlotState> out;
  if (health_region_ == nullptr || !health_region_->valid()) return out;
  for (const auto& [key, slot] : health_slots_.entries()) {
    out.push_back(SlotState{key.first, key.second, slot, health_region_->Healthy(slot)});
  }
  return out;
}

std::shared_ptr<const Snapshot> ConfigApplier::current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

ConfigApplier::Result ConfigApplier::Apply(const zproxy::v1::ConfigSnapshot& snapshot,
                                           uint32_t timeout_ms) {
  // One change at a time: a second Apply waits for the first to be live everywhere.
  std::lock_guard<std::mutex> lock(mu_);
  Result result;
  uint64_t start = NowUs();
  // New addresses of DNS-named endpoints: the same config version, so only for the
  // version running now (a refresh built for an older one must not roll it back).
  const bool refresh = snapshot.endpoints_refresh();
  if (refresh && snapshot.version() != current_->version) {
    result.reason = "endpoints refresh for version " + std::to_string(snapshot.version()) +
                    ", but version " + std::to_string(current_->version) + " is running";
    return result;
  }
  if (!refresh && snapshot.resync() && snapshot.version() == current_->version) {
    result.ok = true;  // already serving it
    return result;
  }
  if (!refresh && !snapshot.resync() && snapshot.version() <= current_->version) {
    result.reason = "version " + std::to_string(snapshot.version()) +
                    " is not newer than the running version " + std::to_string(current_->version);
    return result;
  }
  std::string blocker = InPlaceBlocker(current_->config, snapshot.config());
  if (!blocker.empty()) {
    result.needs_restart = true;
    result.reason = blocker;
    return result;
  }
  HealthSlotTable slots;
  for (const auto& s : snapshot.health_slots()) slots.Add(s.cluster(), s.address(), s.slot());
  std::string error;
  std::shared_ptr<Snapshot> next =
      BuildSnapshot(snapshot.config(), snapshot.version(), &error, health_region_, &slots,
                    ticket_keys_, current_.get());
  if (next == nullptr) {
    result.reason = error;
    return result;
  }
  if (!PostAndWait(next, start + static_cast<uint64_t>(timeout_ms) * 1000, &result.reason)) {
    return result;
  }
  health_slots_ = std::move(slots);
  result.ok = true;
  result.apply_us = NowUs() - start;
  ZLOG_INFO("config version %lu%s live on %zu worker(s) in %lu us",
            static_cast<unsigned long>(next->version),
            refresh ? " (new addresses of DNS-named endpoints)" : "", workers_.size(),
            static_cast<unsigned long>(result.apply_us));
  return result;
}

}  // namespace zproxy::dataplane
