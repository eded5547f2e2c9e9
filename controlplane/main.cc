// zproxyd: loads and validates the config, creates the listen sockets, and starts and
// supervises the data plane. `--check` only validates (exit 0 ok, 1 errors, 2 usage).
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
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
#include "controlplane/orphan_startup.h"
#include "controlplane/state/config_manager.h"
#include "controlplane/state/config_ops.h"
#include "controlplane/state/state_file.h"
#include "controlplane/sync/config_push.h"
#include "controlplane/sync/orphan.h"
#include "controlplane/sync/resyncer.h"
#include "controlplane/sync/sync_server.h"
#include "controlplane/workers.h"

namespace zproxy::controlplane {
namespace {

long long MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t)
      .count();
}

// The config's bpf block (defaults applied) as the BPF loader's options.
bpf::BpfOptions BpfOptionsFrom(const zproxy::v1::Config& config) {
  bpf::BpfOptions o;
  o.policy = config.bpf().steering() == zproxy::v1::STEERING_POLICY_HASH ? bpf::SteerPolicy::kHash
                                                                         : bpf::SteerPolicy::kCpu;
  o.keep_pins = config.bpf().keep_pins();
  return o;
}

int Main(int argc, char** argv) {
  const auto process_start = std::chrono::steady_clock::now();
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
  const bpf::BpfOptions bpf_options = BpfOptionsFrom(loaded.config);
  health::HealthService health;
  {
    health::BpfHealthStore store;
    health::BpfHealthStore* bpf_store = nullptr;
    if (bpf::HealthMap* map = bpf_runtime.LoadHealthMap(loaded.config.bpffs_path(), bpf_options)) {
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
    // A data plane running as dataplane_user dials (and after a zproxyd restart redials)
    // this socket without privileges: it becomes the socket's owner, mode stays 0600.
    const std::string& user = loaded.config.dataplane_user();
    if (sync_server != nullptr && !user.empty()) {
      const passwd* pw = getpwnam(user.c_str());
      if (pw == nullptr || chown(sync_server->path().c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        ZLOG_WARN("data plane sync socket %s: cannot hand it to dataplane_user %s: %s",
                  sync_server->path().c_str(), user.c_str(),
                  pw == nullptr ? "no such user" : strerror(errno));
      }
    }
  }

  // A data plane left serving by a zproxyd that died (it holds the ports and redials the
  // sync socket) is adopted: it keeps serving throughout, we take copies of its listen
  // sockets and its adoption channel, re-attach its health and resync its config. If that
  // is impossible it is taken over instead: our own data plane on its sockets, then it drains.
  std::vector<ListenSocket> sockets;
  OrphanStartup orphan;
  if (!CreateListenSockets(loaded.config, workers, &sockets, &error)) {
    const bool in_use = error.find("Address already in use") != std::string::npos;
    if (sync_server == nullptr || !in_use ||
        !StartWithOrphans(sync_server->sessions(), loaded.config, workers, flags.no_adopt, &sockets,
                          &orphan, &error)) {
      ZLOG_ERROR("%s", error.c_str());
      return 1;
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
    bpf_runtime.Start(loaded.config.bpffs_path(), groups, bpf::WorkerCpus(workers), bpf_options);
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

  // Health slots and verdicts: those the orphan reads are kept (it goes on reading them
  // until it is re-attached, or until it drains); every other slot starts healthy.
  health.Reset(orphan.InheritedHealth());

  DataplaneSupervisor::Options options;
  options.binary = binary;
  options.workers = workers;
  options.stop_timeout = DataplaneSupervisor::Ms(drain_ms + 5000);
  // Every data plane start carries the config it will run: the checker follows that
  // config (unchanged endpoints keep slot and state) and the data plane gets the region.
  options.extend_bootstrap = [&health, &sync_server, &bpf_runtime](
                                 zproxy::v1::DataplaneBootstrap* boot, std::vector<int>* fds) {
    health.Apply(boot->config());
    health.FillBootstrap(boot->config(), boot, fds);
    if (sync_server != nullptr) boot->set_sync_address(sync_server->address());
    // Kernel splicing: the data plane inserts pass-through pairs into the SOCKHASH through
    // these fds (map updates only; zproxyd loaded and attached the program).
    if (const bpf::SpliceMap* splice = bpf_runtime.splice_map()) {
      auto add = [fds](int fd) {
        fds->push_back(fd);
        return static_cast<uint32_t>(fds->size() - 1);
      };
      boot->set_splice_pairs_fd_index(add(splice->pairs_fd()));
      boot->set_splice_peer_fd_index(add(splice->peer_fd()));
      boot->set_splice_counters_fd_index(add(splice->counters_fd()));
    }
  };
  DataplaneSupervisor supervisor(options, store, sockets);

  CompleteAdoption(&orphan, health, state::DataplaneView(*store.Current().config),
                   store.Current().version, supervisor, MsSince(process_start));

  state::ConfigManager manager(
      &store, flags.config_path, state::Sha256Hex(file_text),
      [&supervisor](const zproxy::v1::Config& config, uint64_t version, std::string* err) {
        return supervisor.Handover(config, version, err);
      });
  // A snapshot carries the health slots of its endpoints (the checker follows its config).
  auto fill_snapshot = [&health](const zproxy::v1::Config& c, zproxy::v1::ConfigSnapshot* snap) {
    health.Apply(c);
    zproxy::v1::DataplaneBootstrap boot;
    std::vector<int> unused_fds;
    health.FillBootstrap(c, &boot, &unused_fds);
    *snap->mutable_health_slots() = boot.health_slots();
  };
  auto handover = [&supervisor](const zproxy::v1::Config& c, uint64_t v, std::string* err) {
    return supervisor.Handover(c, v, err);
  };
  std::unique_ptr<sync::Resyncer> resyncer;
  if (sync_server != nullptr) {
    // Config changes are pushed to the running data plane; a handover only when it cannot
    // take them in place (or is not connected).
    manager.SetApply([&](const zproxy::v1::Config& config, uint64_t version) {
      state::OpStatus st = sync::ApplyConfig(sync_server->sessions(), supervisor.GetStatus().pid,
                                             config, version, fill_snapshot, handover);
      // The checker followed the snapshot; a rejected one leaves the old config serving.
      if (!st.ok()) health.Apply(state::DataplaneView(*store.Current().config));
      return st;
    });
    // Resync on Hello: the data plane serving now reports another version than ours (it
    // missed a change while its stream was down, or it was adopted).
    manager.SetResync([&](const zproxy::v1::Config& config, uint64_t version, uint64_t had) {
      state::OpStatus st = sync::ResyncConfig(sync_server->sessions(), supervisor.GetStatus().pid,
                                              had, config, version, fill_snapshot, handover);
      if (!st.ok()) health.Apply(state::DataplaneView(*store.Current().config));
      return st;
    });
    resyncer = std::make_unique<sync::Resyncer>([&](pid_t pid, uint64_t version) {
      if (pid == supervisor.GetStatus().pid) manager.Resync(version);
    });
    sync_server->sessions().SetHelloObserver(
        [&resyncer](pid_t pid, uint64_t version) { resyncer->Post(pid, version); });
    // The adopted data plane said Hello before any of this existed.
    if (supervisor.GetStatus().pid > 0) {
      resyncer->Post(supervisor.GetStatus().pid, orphan.hello.config_version());
    }
  }
  admin::AdminContext context;
  context.manager = &manager;
  context.dataplane_status = [&supervisor] {
    DataplaneSupervisor::Status s = supervisor.GetStatus();
    return admin::DataplaneStatus{s.pid, s.uptime_ms, s.restarts, s.handovers, s.adopted};
  };
  context.config_source = startup.source;
  context.state_path = state_path;
  context.workers = workers;
  context.health_events = &health.events();
  context.health_states = [&health] { return health.States(); };
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
  if (!orphan.to_drain.empty()) {
    retire_orphans = std::make_unique<sync::OrphanRetirer>(
        sync_server->sessions(), orphan.to_drain,
        [&supervisor] { return supervisor.GetStatus().pid; }, std::chrono::milliseconds(10000));
  }
  int code = supervisor.Run();
  if (sync_server != nullptr) sync_server->sessions().SetHelloObserver(nullptr);
  if (resyncer != nullptr) resyncer->Stop();
  if (admin_server != nullptr) admin_server->Shutdown();
  retire_orphans.reset();
  if (sync_server != nullptr) sync_server->Shutdown();
  ZLOG_INFO("exiting with status %d", code);
  return code;
}

}  // namespace
}  // namespace zproxy::controlplane

int main(int argc, char** argv) { return zproxy::controlplane::Main(argc, argv); }
