// zproxyd: loads and validates the config, creates the listen sockets, and starts and
// supervises the data plane. `--check` only validates (exit 0 ok, 1 errors, 2 usage).
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "controlplane/admin/admin_server.h"
#include "controlplane/bpf/bpf_runtime.h"
#include "controlplane/config/defaults.h"
#include "controlplane/config/load.h"
#include "controlplane/config_store.h"
#include "controlplane/dataplane_locator.h"
#include "controlplane/dataplane_supervisor.h"
#include "controlplane/flags.h"
#include "controlplane/health/health_service.h"
#include "controlplane/listen_sockets.h"
#include "controlplane/state/config_manager.h"
#include "controlplane/state/config_ops.h"
#include "controlplane/state/state_file.h"
#include "controlplane/sync/adopt_sockets.h"
#include "controlplane/sync/config_push.h"
#include "controlplane/sync/orphan.h"
#include "controlplane/sync/sync_server.h"
#include "controlplane/workers.h"

namespace zproxy::controlplane {
namespace {

int Main(int argc, char** argv) {
  SetLogComponent("zproxyd");
  Flags flags;
  std::string error;
  if (!ParseFlags(argc, argv, &flags, &error)) {
    std::fprintf(stderr, "zproxyd: %s\n%s", error.c_str(), Usage());
    return 2;
  }
  if (flags.help) {
    std::fputs(Usage(), stdout);
    return 0;
  }

  config::LoadResult loaded = config::LoadConfigFile(flags.config_path);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
    std::fprintf(stderr, "configuration %s has %zu error%s\n", flags.config_path.c_str(),
                 loaded.errors.size(), loaded.errors.size() == 1 ? "" : "s");
    return 1;
  }
  if (flags.check) {
    std::printf("configuration %s is ok\n", flags.config_path.c_str());
    return 0;
  }

  // Before any child or thread exists, so every thread inherits the mask.
  BlockSupervisorSignals();

  std::string binary;
  if (!FindDataplaneBinary(flags.dataplane_path, &binary, &error)) {
    ZLOG_ERROR("%s", error.c_str());
    return 1;
  }

  // Active health checks: one thread (after BlockSupervisorSignals, so it inherits the
  // mask) writing the shared health region the data plane maps read-only: the pinned BPF
  // map, or a memfd when BPF cannot load (one log line). The rest of the BPF setup comes
  // once the listen sockets exist; bpf_runtime lives until exit (its destructor unpins).
  bpf::BpfRuntime bpf_runtime;
  health::HealthService health;
  {
    health::BpfHealthStore store;
    health::BpfHealthStore* bpf_store = nullptr;
    if (bpf::HealthMap* map = bpf_runtime.LoadHealthMap(loaded.config.bpffs_path(), {})) {
      store.map_fd = map->fd();
      store.share_fd = map->ShareFd();
      store.name_slot = [map](uint32_t slot, const std::string& cluster,
                              const std::string& address) {
        map->SetSlotName(slot, cluster, address);
      };
      store.clear_slot = [map](uint32_t slot) { map->ClearSlotName(slot); };
      store.clear_all = [map] { map->ClearSlotNames(); };
      if (store.share_fd.valid()) bpf_store = &store;
    }
    if (!health.Start(&error, bpf_store)) {
      if (bpf_store == nullptr) {
        ZLOG_ERROR("%s", error.c_str());
        return 1;
      }
      ZLOG_WARN("%s: health lives in a memfd region", error.c_str());
      if (!health.Start(&error)) {
        ZLOG_ERROR("%s", error.c_str());
        return 1;
      }
    }
  }

  std::string workers_note;
  const uint32_t workers =
      ResolveWorkers(loaded.config.workers(), AffinityCpuCount(), &workers_note);

  // File vs. persisted Admin API state (README: "file vs. API precedence").
  std::string file_text;
  {
    std::ifstream in(flags.config_path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    file_text = text.str();
  }
  state::StartupConfig startup =
      state::ChooseStartupConfig(loaded.config, flags.config_path, file_text);
  if (startup.warn) {
    ZLOG_WARN("%s", startup.note.c_str());
  } else {
    ZLOG_INFO("%s", startup.note.c_str());
  }
  loaded.config = std::move(startup.config);

  // The internal DataplaneSync endpoint: every data plane dials it for config snapshots
  // (controlplane/sync). Started before the listen sockets so that an orphaned data plane
  // (left serving by a zproxyd that died) can be found and taken over.
  std::unique_ptr<sync::SyncServer> sync_server;
  {
    const std::string sync_path =
        sync::SyncSocketPath(loaded.config.admin_address(), loaded.config.state_dir(), &error);
    if (!sync_path.empty()) sync_server = sync::SyncServer::Start(sync_path, &error);
    if (sync_server == nullptr) {
      ZLOG_WARN("data plane sync disabled: %s (every config change restarts the data plane)",
                error.c_str());
    }
  }

  std::vector<ListenSocket> sockets;
  std::vector<pid_t> orphans;
  if (!CreateListenSockets(loaded.config, workers, &sockets, &error)) {
    // The ports may be held by the data plane of a zproxyd that died: it keeps serving and
    // redials the sync socket. Join its SO_REUSEPORT groups; it drains once ours serves.
    if (sync_server != nullptr && error.find("Address already in use") != std::string::npos) {
      orphans = sync::FindOrphans(sync_server->sessions(), std::chrono::milliseconds(3000));
    }
    if (orphans.empty()) {
      ZLOG_ERROR("%s", error.c_str());
      return 1;
    }
    // Best: the orphan's own sockets travel back (nothing queued on them is lost when it
    // drains). Else join its SO_REUSEPORT groups with fresh sockets.
    sockets.clear();
    if (sync::AdoptListenSockets(orphans[0], loaded.config, workers, &sockets, &error)) {
      ZLOG_INFO("takeover: adopted %zu listen socket(s) from orphaned data plane pid %d",
                sockets.size(), orphans[0]);
    } else {
      ZLOG_WARN(
          "takeover: cannot adopt the listen sockets of orphaned data plane pid %d (%s); "
          "joining its SO_REUSEPORT groups instead",
          orphans[0], error.c_str());
      sockets.clear();
      if (!CreateListenSockets(loaded.config, workers, &sockets, &error, /*probe=*/false)) {
        ZLOG_ERROR("%s", error.c_str());
        return 1;
      }
    }
  }

  ZLOG_INFO("starting: config %s, %s, listen backlog %d", flags.config_path.c_str(),
            workers_note.c_str(), ListenBacklog());
  for (size_t i = 0; i < sockets.size(); i += workers) {
    const auto& l = loaded.config.listeners(static_cast<int>(i / workers));
    ZLOG_INFO("listener \"%s\" on %s (%s, %u SO_REUSEPORT sockets)", sockets[i].listener.c_str(),
              sockets[i].address.c_str(), l.has_tcp_proxy() ? "tcp_proxy" : "http", workers);
  }

  // BPF after the listen sockets exist and before the data plane starts: steering per
  // listener group (or its fallback, one log line each) and the splice map, pinned under
  // bpffs_path.
  {
    std::vector<bpf::ListenerGroup> groups;
    for (const ListenSocket& s : sockets) {
      if (groups.empty() || groups.back().listener != s.listener) {
        groups.push_back({s.listener, {}});
      }
      groups.back().worker_fds.push_back(s.fd.get());
    }
    bpf_runtime.Start(loaded.config.bpffs_path(), groups, bpf::WorkerCpus(workers), {});
  }
  if (!loaded.config.metrics_address().empty()) {
    ZLOG_INFO("metrics on %s (served by the data plane)", loaded.config.metrics_address().c_str());
  }

  const uint32_t drain_ms = loaded.config.drain_timeout_ms();
  const std::string admin_address = loaded.config.admin_address();
  const std::string state_path = state::StatePath(loaded.config.state_dir());
  const zproxy::v1::AdminTls tls = loaded.config.admin_tls();
  ConfigStore store;
  store.Publish(std::move(loaded.config), startup.version);

  DataplaneSupervisor::Options options;
  options.binary = binary;
  options.workers = workers;
  options.stop_timeout = DataplaneSupervisor::Ms(drain_ms + 5000);
  // Every data plane start carries the config it will run: the checker follows that
  // config (unchanged endpoints keep slot and state) and the data plane gets the region.
  options.extend_bootstrap = [&health, &sync_server](zproxy::v1::DataplaneBootstrap* boot,
                                                     std::vector<int>* fds) {
    health.Apply(boot->config());
    health.FillBootstrap(boot->config(), boot, fds);
    if (sync_server != nullptr) boot->set_sync_address(sync_server->address());
  };
  DataplaneSupervisor supervisor(options, store, sockets);

  state::ConfigManager manager(
      &store, flags.config_path, state::Sha256Hex(file_text),
      [&supervisor](const zproxy::v1::Config& config, uint64_t version, std::string* err) {
        return supervisor.Handover(config, version, err);
      });
  if (sync_server != nullptr) {
    // Config changes are pushed to the running data plane; a handover only when it cannot
    // take them in place (or is not connected).
    manager.SetApply([&](const zproxy::v1::Config& config, uint64_t version) {
      state::OpStatus st = sync::ApplyConfig(
          sync_server->sessions(), supervisor.GetStatus().pid, config, version,
          [&health](const zproxy::v1::Config& c, zproxy::v1::ConfigSnapshot* snap) {
            health.Apply(c);
            zproxy::v1::DataplaneBootstrap boot;
            std::vector<int> unused_fds;
            health.FillBootstrap(c, &boot, &unused_fds);
            *snap->mutable_health_slots() = boot.health_slots();
          },
          [&supervisor](const zproxy::v1::Config& c, uint64_t v, std::string* err) {
            return supervisor.Handover(c, v, err);
          });
      // The checker followed the snapshot; a rejected one leaves the old config serving.
      if (!st.ok()) health.Apply(state::DataplaneView(*store.Current().config));
      return st;
    });
  }
  admin::AdminContext context;
  context.manager = &manager;
  context.dataplane_status = [&supervisor] {
    DataplaneSupervisor::Status s = supervisor.GetStatus();
    return admin::DataplaneStatus{s.pid, s.uptime_ms, s.restarts, s.handovers};
  };
  context.config_source = startup.source;
  context.state_path = state_path;
  context.workers = workers;
  context.health_events = &health.events();
  if (sync_server != nullptr) {
    context.latest_stats = [&sync_server, &supervisor](std::string* text) {
      return sync_server->sessions().LatestStats(supervisor.GetStatus().pid,
                                                 std::chrono::milliseconds(3000), text, nullptr);
    };
  }
  std::unique_ptr<admin::AdminServer> admin_server = admin::AdminServer::Start(
      admin_address, tls.cert(), tls.key(), tls.client_ca(), std::move(context), &error);
  if (admin_server == nullptr) {
    // Traffic matters more than the API: serve the file's config and say so loudly.
    ZLOG_WARN("Admin API disabled: %s (fix admin_address and restart zproxyd)", error.c_str());
  } else {
    ZLOG_INFO("Admin API on %s (config version %llu, from the %s)", admin_address.c_str(),
              static_cast<unsigned long long>(startup.version), startup.source.c_str());
  }

  std::unique_ptr<sync::OrphanRetirer> retire_orphans;
  if (!orphans.empty()) {
    retire_orphans = std::make_unique<sync::OrphanRetirer>(
        sync_server->sessions(), orphans, [&supervisor] { return supervisor.GetStatus().pid; },
        std::chrono::milliseconds(10000));
  }
  int code = supervisor.Run();
  if (admin_server != nullptr) admin_server->Shutdown();
  retire_orphans.reset();
  if (sync_server != nullptr) sync_server->Shutdown();
  ZLOG_INFO("exiting with status %d", code);
  return code;
}

}  // namespace
}  // namespace zproxy::controlplane

int main(int argc, char** argv) { return zproxy::controlplane::Main(argc, argv); }
