#include "controlplane/orphan_startup.h"

#include <algorithm>
#include <chrono>

#include "common/log.h"
#include "controlplane/sync/adopt_sockets.h"
#include "controlplane/sync/orphan.h"

namespace zproxy::controlplane {

std::vector<health::HealthService::InheritedSlot> OrphanStartup::InheritedHealth() const {
  std::vector<health::HealthService::InheritedSlot> out;
  for (const auto& h : hello.health()) {
    out.push_back({h.slot().cluster(), h.slot().address(), h.slot().slot(), h.healthy()});
  }
  return out;
}

bool StartWithOrphans(sync::SessionRegistry& sessions, const zproxy::v1::Config& config,
                      uint32_t workers, bool no_adopt, std::vector<ListenSocket>* sockets,
                      OrphanStartup* out, std::string* error) {
  std::vector<pid_t> orphans = sync::FindOrphans(sessions, std::chrono::milliseconds(3000));
  if (orphans.empty()) return false;
  // The orphan serving the newest config is the one to keep.
  std::stable_sort(orphans.begin(), orphans.end(), [&sessions](pid_t a, pid_t b) {
    zproxy::v1::Hello ha, hb;
    sessions.HelloOf(a, &ha);
    sessions.HelloOf(b, &hb);
    return ha.config_version() > hb.config_version();
  });
  const pid_t orphan = orphans[0];
  sessions.HelloOf(orphan, &out->hello);
  out->to_drain = orphans;
  sockets->clear();
  size_t fresh = 0;
  if (no_adopt) {
    *error = "--no-adopt";
  } else if (sync::GatherListenSockets(orphan, config, workers, sockets, error, &fresh) &&
             sync::OpenAdoption(orphan, out->hello, &out->adoption, error)) {
    out->to_drain.erase(out->to_drain.begin());  // the others (if any) drain
    ZLOG_INFO(
        "adoption: data plane pid %d (config version %llu): %zu listen socket(s) taken back%s",
        orphan, static_cast<unsigned long long>(out->hello.config_version()),
        sockets->size() - fresh * workers,
        fresh != 0 ? ", fresh ones for listeners it does not serve" : "");
    return true;
  }
  ZLOG_WARN(
      "adoption of data plane pid %d impossible (%s): taking it over instead (a new data "
      "plane, then it drains)",
      orphan, error->c_str());
  // Best: the orphan's own sockets travel back (nothing queued on them is lost when it
  // drains). Else join its SO_REUSEPORT groups with fresh sockets.
  sockets->clear();
  if (sync::AdoptListenSockets(orphan, config, workers, sockets, error)) {
    ZLOG_INFO("takeover: adopted %zu listen socket(s) from orphaned data plane pid %d",
              sockets->size(), orphan);
    return true;
  }
  ZLOG_WARN(
      "takeover: cannot adopt the listen sockets of orphaned data plane pid %d (%s); joining "
      "its SO_REUSEPORT groups instead",
      orphan, error->c_str());
  sockets->clear();
  return CreateListenSockets(config, workers, sockets, error, /*probe=*/false);
}

void CompleteAdoption(OrphanStartup* o, health::HealthService& health,
                      const zproxy::v1::Config& dataplane_view, uint64_t current_version,
                      DataplaneSupervisor& supervisor, long long ms_since_start) {
  if (!o->adoption.channel.valid()) return;
  health.Apply(dataplane_view);
  zproxy::v1::DataplaneBootstrap message;
  std::vector<int> fds;
  health.FillBootstrap(dataplane_view, &message, &fds);
  std::string error;
  const pid_t pid = o->adoption.pid;
  if (!sync::SendHealthRegion(o->adoption.channel.get(), message, fds, 3000, &error)) {
    ZLOG_WARN(
        "adoption of data plane pid %d failed: health region: %s; taking it over instead (a "
        "new data plane, then it drains)",
        pid, error.c_str());
    o->to_drain.insert(o->to_drain.begin(), pid);
    o->adoption = sync::AdoptionHandle{};
    return;
  }
  supervisor.Adopt(pid, std::move(o->adoption.pidfd), std::move(o->adoption.channel),
                   o->hello.config_version());
  ZLOG_INFO(
      "adoption: data plane pid %d adopted %lld ms after zproxyd started (health re-attached; "
      "config version %llu, current %llu)",
      pid, ms_since_start, static_cast<unsigned long long>(o->hello.config_version()),
      static_cast<unsigned long long>(current_version));
}

}  // namespace zproxy::controlplane
