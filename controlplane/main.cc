// zproxyd: loads and validates the config, creates the listen sockets, and starts and
// supervises the data plane. `--check` only validates (exit 0 ok, 1 errors, 2 usage).
//
// Main() reads the command line and the config; Zproxyd::Run() is the rest as a list of
// steps. The order matters: signals are blocked before any thread exists, the sync socket
// is up before the listen sockets (an orphaned data plane holding the ports dials it), BPF
// steering needs the listen sockets, and the supervisor starts the data plane last.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/log.h"
#include "controlplane/admin/admin_server.h"
#include "controlplane/admin/metrics_scrape.h"
#include "controlplane/bpf/bpf_runtime.h"
#include "controlplane/bpf/inbound.h"
#include "controlplane/bpf/local_hops.h"
#include "controlplane/bpf/proxy_cgroup.h"
#include "controlplane/bpf/sidecar.h"
#include "controlplane/config/defaults.h"
#include "controlplane/config/load.h"
#include "controlplane/config_store.h"
#include "controlplane/dataplane_locator.h"
#include "controlplane/dataplane_supervisor.h"
#include "controlplane/dns/discovery.h"
#include "controlplane/dns/dns_settings.h"
#include "controlplane/flags.h"
#include "controlplane/fleet/etcd_client.h"
#include "controlplane/fleet/fleet_doc.h"
#include "controlplane/fleet/fleet_source.h"
#include "controlplane/fleet/fleet_startup.h"
#include "controlplane/health/health_service.h"
#include "controlplane/listen_sockets.h"
#include "controlplane/notify/sd_notify.h"
#include "controlplane/notify/service_notifier.h"
#include "controlplane/orphan_startup.h"
#include "controlplane/probes/probe_server.h"
#include "controlplane/probes/readiness.h"
#include "controlplane/reload/reloader.h"
#include "controlplane/startup/health_start.h"
#include "controlplane/startup/sync_start.h"
#include "controlplane/state/config_manager.h"
#include "controlplane/state/config_ops.h"
#include "controlplane/state/dataplane_metrics.h"
#include "controlplane/state/state_file.h"
#include "controlplane/sync/config_push.h"
#include "controlplane/sync/orphan.h"
#include "controlplane/sync/resyncer.h"
#include "controlplane/sync/sync_server.h"
#include "controlplane/workers.h"

namespace zproxy::controlplane {
namespace {

using Clock = std::chrono::steady_clock;

long long MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// The config's bpf block (defaults applied) as the BPF loader's options.
bpf::BpfOptions BpfOptionsFrom(const zproxy::v1::Config& config) {
  bpf::BpfOptions o;
  o.policy = config.bpf().steering() == zproxy::v1::STEERING_POLICY_HASH ? bpf::SteerPolicy::kHash
                                                                         : bpf::SteerPolicy::kCpu;
  o.keep_pins = config.bpf().keep_pins();
  return o;
}

// Parses the command line. Returns the exit status when zproxyd should exit now (2 on a
// usage error, 0 after --help), nothing when it should go on.
std::optional<int> ParseCommandLine(int argc, char** argv, Flags* flags) {
  std::string error;
  if (!ParseFlags(argc, argv, flags, &error)) {
    std::fprintf(stderr, "zproxyd: %s\n%s", error.c_str(), Usage());
    return 2;
  }
  if (flags->help) {
    std::fputs(Usage(), stdout);
    return 0;
  }
  return std::nullopt;
}

// Loads and validates the config file; on errors prints each, then the count, to stderr.
bool LoadConfig(const std::string& path, config::LoadResult* loaded) {
  *loaded = config::LoadConfigFile(path);
  if (loaded->ok()) return true;
  for (const auto& e : loaded->errors) std::fprintf(stderr, "%s\n", e.ToString().c_str());
  std::fprintf(stderr, "configuration %s has %zu error%s\n", path.c_str(), loaded->errors.size(),
               loaded->errors.size() == 1 ? "" : "s");
  return false;
}

// zproxyd once the config is known to be valid: one method per step, in the order Run()
// calls them. The members are declared in the order the steps create them, so they are
// destroyed in reverse (the Admin API before the supervisor, the BPF runtime, which
// unpins, near the end).
class Zproxyd {
 public:
  Zproxyd(Clock::time_point process_start, Flags flags, zproxy::v1::Config config,
          notify::SdNotify sd)
      : process_start_(process_start),
        flags_(std::move(flags)),
        config_(std::move(config)),
        sd_(std::move(sd)) {}

  // Returns the process's exit status: the supervisor's, or 1 when start-up fails.
  int Run() {
    if (!FindDataplaneBinary(flags_.dataplane_path, &binary_, &error_)) {
      ZLOG_ERROR("%s", error_.c_str());
      return 1;
    }
    bpf_options_ = BpfOptionsFrom(config_);
    if (!startup::StartHealthChecks(config_.bpffs_path(), bpf_options_, &bpf_runtime_, &health_)) {
      return 1;
    }
    workers_ = ResolveWorkers(config_.workers(), AffinityCpuCount(), &workers_note_);
    ChooseStartupConfig();
    if (config_.has_config_source() && !ChooseFleetStartupConfig()) return 1;
    if (!StartDnsDiscovery()) return 1;
    sync_server_ = startup::StartSyncServer(config_);
    EnterProxyCgroup();
    if (!OpenListenSockets()) return 1;
    LogListeners();
    StartBpf();
    if (!StartSidecar()) return 1;
    PublishConfig();
    CreateSupervisor();
    if (!StartProbes()) return 1;
    CompleteAdoption(&orphan_, health_, View(*store_.Current().config), store_.Current().version,
                     *supervisor_, MsSince(process_start_));
    CreateConfigManager();
    if (sync_server_ != nullptr) PushConfigChangesOverSync();
    RefreshEndpointsOnDnsChanges();
    StartFleet();
    StartAdminApi();
    StartReloader();
    RetireOrphans();
    notifier_->Start();
    int code = supervisor_->Run();
    Shutdown();
    ZLOG_INFO("exiting with status %d", code);
    return code;
  }

 private:
  // File vs. persisted Admin API state (docs/admin-api.md: "File vs. API precedence").
  void ChooseStartupConfig() {
    {
      std::ifstream in(flags_.config_path, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      file_text_ = text.str();
    }
    // Fleet mode decides with etcd and its own snapshot (ChooseFleetStartupConfig).
    if (config_.has_config_source()) return;
    startup_ = state::ChooseStartupConfig(config_, flags_.config_path, file_text_);
    if (startup_.warn) {
      ZLOG_WARN("%s", startup_.note.c_str());
    } else {
      ZLOG_INFO("%s", startup_.note.c_str());
    }
    config_ = std::move(startup_.config);
  }

  // Fleet mode (docs/fleet.md): the fleet part comes from etcd, seeded from the file when
  // the prefix is empty, else from the state_dir snapshot while etcd cannot be reached.
  // Replaces the file-vs-state decision made just before (its state file is rewritten).
  bool ChooseFleetStartupConfig() {
    config_.mutable_node()->set_name(fleet::NodeName(config_));
    fleet_client_ = fleet::EtcdClient::Create(config_.config_source().etcd(), &error_);
    if (fleet_client_ == nullptr) {
      ZLOG_ERROR("fleet: %s", error_.c_str());
      return false;
    }
    fleet::FleetStart start =
        fleet::ChooseFleetStartupConfig(config_, flags_.config_path, fleet_client_.get());
    if (start.startup.warn) {
      ZLOG_WARN("fleet: %s", start.startup.note.c_str());
    } else {
      ZLOG_INFO("fleet: %s", start.startup.note.c_str());
    }
    fleet_revision_ = start.revision;
    fleet_reached_ = start.reached;
    startup_.version = start.startup.version;
    startup_.source = start.startup.source;
    config_ = std::move(start.startup.config);
    return true;
  }

  // The watcher (etcd -> this node) and the node's entry under <prefix>nodes/.
  void StartFleet() {
    if (fleet_client_ == nullptr) return;
    const std::string prefix =
        fleet::NormalizePrefix(store_.Current().config->config_source().etcd().prefix());
    manager_->SetFleet(prefix, fleet_revision_);
    manager_->SetFileMerge([](const zproxy::v1::Config& file, const zproxy::v1::Config& current) {
      zproxy::v1::Config merged = fleet::MergeNode(file, fleet::FleetPart(current));
      // The node name a file without one got at start.
      merged.mutable_node()->set_name(current.node().name());
      return merged;
    });
    fleet::FleetSource::Options o;
    o.prefix = prefix;
    o.node = store_.Current().config->node().name();
    o.node_ttl_s = store_.Current().config->config_source().etcd().node_ttl_s();
    if (o.node_ttl_s == 0) o.node_ttl_s = 10;
    o.unreachable_at_start = !fleet_reached_;
    auto health = [this] {
      std::pair<uint32_t, uint32_t> counts{0, 0};
      for (const health::EndpointHealth& e : health_.States()) {
        (e.healthy ? counts.first : counts.second)++;
      }
      return counts;
    };
    fleet_ = std::make_unique<fleet::FleetSource>(std::move(fleet_client_), manager_.get(),
                                                  std::move(o), health);
    fleet_->Start();
    fleet_metrics_.store(fleet_.get());
  }

  // Host-name endpoints ("api.internal:8080"): zproxyd looks them up (c-ares) before the
  // first data plane starts and keeps them fresh; the data plane only sees addresses.
  bool StartDnsDiscovery() {
    std::string error;
    discovery_ = dns::Discovery::Start(
        config_, [this] { return store_.Current().config; }, &error);
    if (discovery_ == nullptr) {
      if (!dns::NamesOf(config_).empty()) {
        ZLOG_ERROR("dns: %s (the config has host-name endpoints)", error.c_str());
        return false;
      }
      ZLOG_WARN("dns: %s: host-name endpoints cannot be used", error.c_str());
      return true;
    }
    discovery_->EnsureLookedUp(config_);
    return true;
  }

  // What a data plane is given for `config`: DataplaneView, host names expanded to the
  // addresses they resolve to now (names new to discovery are looked up first).
  zproxy::v1::Config View(const zproxy::v1::Config& config) {
    zproxy::v1::Config view = state::DataplaneView(config);
    if (discovery_ != nullptr) {
      discovery_->EnsureLookedUp(config);
      discovery_->Expand(&view);
    }
    return view;
  }

  // New addresses go to the running data plane as an endpoints refresh of the current
  // version (serialized with Admin API changes); without the sync stream, as a handover.
  void RefreshEndpointsOnDnsChanges() {
    if (discovery_ == nullptr) return;
    if (sync_server_ != nullptr) {
      manager_->SetRefresh([this](const zproxy::v1::Config& config, uint64_t version) {
        auto fill = [this](const zproxy::v1::Config& c, zproxy::v1::ConfigSnapshot* snap) {
          FillSnapshot(c, snap);
        };
        return sync::RefreshEndpoints(sync_server_->sessions(), supervisor_->GetStatus().pid,
                                      config, version, fill);
      });
    } else {
      manager_->SetRefresh([this](const zproxy::v1::Config& config, uint64_t version) {
        std::string error;
        if (Handover(config, version, &error)) return state::OpStatus::Ok();
        ZLOG_WARN("dns: handover for new endpoint addresses failed: %s; retrying", error.c_str());
        return state::OpStatus::Error(state::OpStatus::kUnavailable, error);
      });
    }
    discovery_->OnChange([this] { return manager_->RefreshEndpoints().ok(); });
  }

  // A data plane left serving by a zproxyd that died (it holds the ports and redials the
  // sync socket) is adopted: it keeps serving throughout, we take copies of its listen
  // sockets and its adoption channel, re-attach its health and resync its config. If that
  // is impossible it is taken over instead: our own data plane on its sockets, then it
  // drains.
  bool OpenListenSockets() {
    if (CreateListenSockets(config_, workers_, &sockets_, &error_)) return true;
    const bool in_use = error_.find("Address already in use") != std::string::npos;
    if (sync_server_ == nullptr || !in_use ||
        !StartWithOrphans(sync_server_->sessions(), config_, workers_, flags_.no_adopt, &sockets_,
                          &orphan_, &error_)) {
      ZLOG_ERROR("%s", error_.c_str());
      return false;
    }
    return true;
  }

  void LogListeners() {
    ZLOG_INFO("starting: config %s, %s, listen backlog %d", flags_.config_path.c_str(),
              workers_note_.c_str(), ListenBacklog());
    for (size_t i = 0; i < sockets_.size(); i += workers_) {
      const auto& l = config_.listeners(static_cast<int>(i / workers_));
      ZLOG_INFO("listener \"%s\" on %s (%s, %u SO_REUSEPORT sockets)", sockets_[i].listener.c_str(),
                sockets_[i].address.c_str(), l.has_tcp_proxy() ? "tcp_proxy" : "http", workers_);
    }
  }

  // BPF after the listen sockets exist and before the data plane starts: steering per
  // listener group (or its fallback, one log line each) and the splice map, pinned under
  // bpffs_path.
  void StartBpf() {
    std::vector<bpf::ListenerGroup> groups;
    for (const ListenSocket& s : sockets_) {
      if (groups.empty() || groups.back().listener != s.listener) {
        groups.push_back({s.listener, {}, {}});
      }
      groups.back().worker_fds.push_back(s.fd.get());
    }
    // The sidecar's inbound listener goes into the sk_lookup SOCKMAP (StartInbound): a
    // socket in eBPF steering's REUSEPORT_SOCKARRAY cannot join it (both keep their mark
    // in sk_user_data: EBUSY), so that listener steers with CBPF.
    if (config_.has_sidecar() && !config_.sidecar().inbound_listener().empty()) {
      for (bpf::ListenerGroup& g : groups) {
        if (g.listener == config_.sidecar().inbound_listener()) {
          g.no_ebpf = "the sidecar's inbound listener: its sockets go into the sk_lookup SOCKMAP";
        }
      }
    }
    bpf_runtime_.Start(config_.bpffs_path(), groups, bpf::WorkerCpus(workers_), bpf_options_);
  }

  // sidecar: the cgroup programs (docs/sidecar.md). false = refused (the root cgroup,
  // zproxyd's own): zproxyd exits. Anything missing is one warning naming it and the
  // nftables rules that do the same job (the data plane honours SO_ORIGINAL_DST).
  bool StartSidecar() {
    if (!config_.has_sidecar()) return true;
    sidecar_configured_ = true;
    const auto& sc = config_.sidecar();
    StartInbound(sc);
    // Inbound only: no cgroup, no outbound listener (validation allows that pair empty).
    if (sc.cgroup().empty()) {
      StartLocalHops(sc, "needs sidecar.cgroup, the application's side");
      return true;
    }
    std::string address;
    for (const auto& l : config_.listeners()) {
      if (l.name() == sc.outbound_listener()) address = l.address();
    }
    bpf::BpfOptions options = bpf_options_;
    options.pin_dir = config_.bpffs_path();
    std::string why;
    switch (sidecar_.Attach(sc, address, options, &why)) {
      case bpf::SidecarInterception::Outcome::kAttached:
        ZLOG_INFO(
            "sidecar: connect4/6, getpeername4/6 and sockops attached to %s: outbound "
            "connections go to listener \"%s\" (%s)",
            sidecar_.cgroup().c_str(), sc.outbound_listener().c_str(), address.c_str());
        StartLocalHops(sc, "");
        return true;
      case bpf::SidecarInterception::Outcome::kRefused:
        ZLOG_ERROR("sidecar: %s", why.c_str());
        return false;
      case bpf::SidecarInterception::Outcome::kUnavailable:
        break;
    }
    std::string port = address.substr(address.rfind(':') + 1);
    ZLOG_WARN(
        "sidecar: cgroup interception unavailable (%s); nothing is intercepted by "
        "zproxy. Use REDIRECT rules instead (SO_ORIGINAL_DST works), e.g.: nft add "
        "table inet zproxy_sidecar; nft add chain inet zproxy_sidecar out '{ type nat "
        "hook output priority -100; }'; nft add rule inet zproxy_sidecar out socket "
        "cgroupv2 level 1 \"<app cgroup>\" meta l4proto tcp redirect to :%s",
        why.c_str(), port.c_str());
    StartLocalHops(sc, "cgroup interception is unavailable: " + why);
    return true;
  }

  // sk_msg's sockops program reaches zproxy's sockets through zproxyd's cgroup, which must
  // be its own (bpf/proxy_cgroup.h). Before any listen socket or the data plane exists, so
  // that they are made in it.
  void EnterProxyCgroup() {
    if (!config_.has_sidecar() || config_.sidecar().cgroup().empty()) return;
    const auto& sc = config_.sidecar();
    if (sc.has_sk_msg() && !sc.sk_msg()) return;
    std::string note;
    switch (proxy_cgroup_.Enter(sc.cgroup(), config_.bpffs_path(), &note)) {
      case bpf::ProxyCgroup::Outcome::kAlreadyOwn:
        break;
      case bpf::ProxyCgroup::Outcome::kMoved:
        ZLOG_INFO(
            "sidecar: zproxyd moved from %s (the root cgroup, or shared with other processes) "
            "into a cgroup of its own, %s, for sk_msg; it leaves and removes it on exit",
            proxy_cgroup_.previous().c_str(), proxy_cgroup_.path().c_str());
        break;
      case bpf::ProxyCgroup::Outcome::kNotMoved:
        ZLOG_INFO("sidecar: zproxyd stays in its cgroup (%s)", note.c_str());
        break;
    }
  }

  // sidecar.sk_msg (default on where available): local hops through sk_msg
  // (docs/sidecar.md, "sk_msg"). One line whatever happens: on, off by config, or
  // unavailable and why (`missing` non-empty: known before trying).
  void StartLocalHops(const zproxy::v1::Sidecar& sc, const std::string& missing) {
    if (sc.has_sk_msg() && !sc.sk_msg()) {
      ZLOG_INFO("sidecar: sk_msg off (sidecar.sk_msg: false): local hops use loopback TCP");
      return;
    }
    std::string why = missing;
    if (why.empty()) {
      bpf::BpfOptions options = bpf_options_;
      options.pin_dir = config_.bpffs_path();
      if (local_hops_.Attach(sc.cgroup(), options, &why)) {
        std::string where;
        for (const std::string& c : local_hops_.cgroups()) where += (where.empty() ? "" : ", ") + c;
        ZLOG_INFO(
            "sidecar: sk_msg on: sockops zproxy_lh_ops on %s (zproxyd's cgroup first), sk_msg "
            "zproxy_lh_msg on zproxy_lh_socks: loopback connections between them skip TCP",
            where.c_str());
        const std::string& own = local_hops_.cgroups().front();
        if (int n = bpf::ForeignProcesses(own); n > 0) {
          ZLOG_WARN(
              "sidecar: zproxyd's cgroup %s holds %d other process(es): their loopback "
              "connections to each other go through sk_msg too (docs/sidecar.md, \"sk_msg\"); "
              "run zproxyd in a cgroup of its own",
              own.c_str(), n);
        }
        return;
      }
    }
    ZLOG_WARN("sidecar: sk_msg unavailable (%s); local hops use loopback TCP", why.c_str());
  }

  // sidecar.inbound_listener: the sk_lookup program on zproxyd's network namespace
  // (docs/sidecar.md). Anything missing is one warning naming it and the iptables rule
  // that does the same job.
  void StartInbound(const zproxy::v1::Sidecar& sc) {
    if (sc.inbound_listener().empty()) return;
    std::vector<int> fds;
    std::string address;
    for (const ListenSocket& s : sockets_) {
      if (s.listener != sc.inbound_listener()) continue;
      fds.push_back(s.fd.get());
      address = s.address;
    }
    std::string ports;
    for (uint32_t p : sc.inbound_ports()) ports += (ports.empty() ? "" : ",") + std::to_string(p);
    if (fds.empty()) {
      ZLOG_WARN(
          "sidecar: inbound_listener \"%s\" names no listener; nothing inbound is "
          "intercepted",
          sc.inbound_listener().c_str());
      return;
    }
    std::string why;
    if (inbound_.Attach(sc, fds, &why)) {
      ZLOG_INFO(
          "sidecar: sk_lookup attached to this network namespace: TCP to ports %s on "
          "non-loopback local addresses goes to listener \"%s\" (%s)",
          ports.c_str(), sc.inbound_listener().c_str(), address.c_str());
      return;
    }
    std::string port = address.substr(address.rfind(':') + 1);
    ZLOG_WARN(
        "sidecar: inbound interception unavailable (%s); nothing inbound is intercepted "
        "by zproxy. Use a REDIRECT rule instead, e.g.: iptables -t nat -A PREROUTING -p tcp "
        "-m multiport --dports %s -j REDIRECT --to-ports %s (the listener then needs a "
        "wildcard address, 0.0.0.0 or [::])",
        why.c_str(), ports.c_str(), port.c_str());
  }

  // The config becomes the store's first snapshot; what the later steps need from it is
  // kept aside first.
  void PublishConfig() {
    drain_ms_ = config_.drain_timeout_ms();
    admin_address_ = config_.admin_address();
    state_path_ = state::StatePath(config_.state_dir());
    admin_tls_ = config_.admin_tls();
    store_.Publish(std::move(config_), startup_.version);
    // Health slots and verdicts: those the orphan reads are kept (it goes on reading them
    // until it is re-attached, or until it drains); every other slot starts healthy.
    health_.Reset(orphan_.InheritedHealth());
  }

  void CreateSupervisor() {
    DataplaneSupervisor::Options options;
    options.binary = binary_;
    options.workers = workers_;
    options.stop_timeout = DataplaneSupervisor::Ms(drain_ms_ + 5000);
    options.extend_bootstrap = [this](zproxy::v1::DataplaneBootstrap* boot, std::vector<int>* fds) {
      ExtendBootstrap(boot, fds);
    };
    // Both run on the supervisor thread: they only post or send one datagram. reloader_
    // and notifier_ exist before Run() reads any signal.
    options.on_sighup = [this] { reloader_->Post(); };
    options.on_stopping = [this] { notifier_->Stopping(); };
    options.view = [this](const zproxy::v1::Config& config) { return View(config); };
    supervisor_ = std::make_unique<DataplaneSupervisor>(options, store_, sockets_);
  }

  // Every data plane start carries the config it will run: the checker follows that
  // config (unchanged endpoints keep slot and state) and the data plane gets the region.
  void ExtendBootstrap(zproxy::v1::DataplaneBootstrap* boot, std::vector<int>* fds) {
    health_.Apply(boot->config());
    health_.FillBootstrap(boot->config(), boot, fds);
    if (sync_server_ != nullptr) boot->set_sync_address(sync_server_->address());
    // Kernel splicing: the data plane inserts pass-through pairs into the SOCKHASH through
    // these fds (map updates only; zproxyd loaded and attached the program).
    if (const bpf::SpliceMap* splice = bpf_runtime_.splice_map()) {
      auto add = [fds](int fd) {
        fds->push_back(fd);
        return static_cast<uint32_t>(fds->size() - 1);
      };
      boot->set_splice_pairs_fd_index(add(splice->pairs_fd()));
      boot->set_splice_peer_fd_index(add(splice->peer_fd()));
      boot->set_splice_counters_fd_index(add(splice->counters_fd()));
    }
    if (!sidecar_.cgroup().empty()) {
      fds->push_back(sidecar_.orig_by_peer_fd());
      boot->set_sidecar_orig_by_peer_fd_index(static_cast<uint32_t>(fds->size() - 1));
    }
    if (local_hops_.attached()) {
      fds->push_back(local_hops_.socks_fd());
      boot->set_sidecar_local_hops_fd_index(static_cast<uint32_t>(fds->size() - 1));
    }
  }

  bool Handover(const zproxy::v1::Config& config, uint64_t version, std::string* error) {
    return supervisor_->Handover(config, version, error);
  }

  void CreateConfigManager() {
    manager_ = std::make_unique<state::ConfigManager>(
        &store_, flags_.config_path, state::Sha256Hex(file_text_),
        [this](const zproxy::v1::Config& config, uint64_t version, std::string* err) {
          return Handover(config, version, err);
        });
    manager_->SetView([this](const zproxy::v1::Config& config) { return View(config); });
  }

  // A snapshot carries the health slots of its endpoints (the checker follows its config).
  void FillSnapshot(const zproxy::v1::Config& c, zproxy::v1::ConfigSnapshot* snap) {
    health_.Apply(c);
    zproxy::v1::DataplaneBootstrap boot;
    std::vector<int> unused_fds;
    health_.FillBootstrap(c, &boot, &unused_fds);
    *snap->mutable_health_slots() = boot.health_slots();
  }

  // Config changes are pushed to the running data plane; a handover only when it cannot
  // take them in place (or is not connected).
  void PushConfigChangesOverSync() {
    auto fill_snapshot = [this](const zproxy::v1::Config& c, zproxy::v1::ConfigSnapshot* snap) {
      FillSnapshot(c, snap);
    };
    auto handover = [this](const zproxy::v1::Config& c, uint64_t v, std::string* err) {
      return Handover(c, v, err);
    };
    manager_->SetApply([this, fill_snapshot, handover](const zproxy::v1::Config& config,
                                                       uint64_t version) {
      state::OpStatus st = sync::ApplyConfig(sync_server_->sessions(), supervisor_->GetStatus().pid,
                                             config, version, fill_snapshot, handover);
      // The checker followed the snapshot; a rejected one leaves the old config serving.
      if (!st.ok()) health_.Apply(View(*store_.Current().config));
      return st;
    });
    // Resync on Hello: the data plane serving now reports another version than ours (it
    // missed a change while its stream was down, or it was adopted).
    manager_->SetResync([this, fill_snapshot, handover](const zproxy::v1::Config& config,
                                                        uint64_t version, uint64_t had) {
      state::OpStatus st =
          sync::ResyncConfig(sync_server_->sessions(), supervisor_->GetStatus().pid, had, config,
                             version, fill_snapshot, handover);
      if (!st.ok()) health_.Apply(View(*store_.Current().config));
      return st;
    });
    resyncer_ = std::make_unique<sync::Resyncer>([this](pid_t pid, uint64_t version) {
      if (pid != supervisor_->GetStatus().pid) return;
      manager_->Resync(version);
      // A data plane that (re)connects may have missed an endpoints refresh of this very
      // version: it gets the current addresses again (a no-op when they are the same).
      if (discovery_ != nullptr && discovery_->HasNames()) manager_->RefreshEndpoints();
    });
    sync_server_->sessions().SetHelloObserver(
        [this](pid_t pid, uint64_t version) { resyncer_->Post(pid, version); });
    // The adopted data plane said Hello before any of this existed.
    if (supervisor_->GetStatus().pid > 0) {
      resyncer_->Post(supervisor_->GetStatus().pid, orphan_.hello.config_version());
    }
  }

  void StartAdminApi() {
    admin::AdminContext context;
    context.manager = manager_.get();
    context.dataplane_status = [this] {
      DataplaneSupervisor::Status s = supervisor_->GetStatus();
      return admin::DataplaneStatus{s.pid, s.uptime_ms, s.restarts, s.handovers, s.adopted};
    };
    context.config_source = startup_.source;
    if (fleet_ != nullptr) {
      fleet::FleetSource* f = fleet_.get();
      context.fleet_mutate = [f](uint64_t expected, const state::ConfigManager::EditFn& edit,
                                 ConfigStore::Snapshot* out, int64_t* revision) {
        return f->Mutate(expected, edit, out, revision);
      };
      context.fleet_status = [f](zproxy::v1::FleetStatus* out) { f->FillStatus(out); };
      context.fleet_nodes = [f](zproxy::v1::FleetStatusResponse* out) { return f->Nodes(out); };
      context.fleet_candidate = [this](const zproxy::v1::Config& request) {
        return fleet::MergeNode(*store_.Current().config, fleet::FleetPart(request));
      };
    }
    context.state_path = state_path_;
    context.workers = workers_;
    context.health_events = &health_.events();
    context.health_states = [this] { return health_.States(); };
    if (discovery_ != nullptr) {
      context.dns_names = [this] {
        admin::ResolvedNames names;
        for (const dns::Discovery::NameInfo& n : discovery_->Names()) {
          names[{n.cluster, n.host}] = admin::ResolvedName{n.ips, n.state};
        }
        return names;
      };
    }
    if (sync_server_ != nullptr) {
      context.latest_stats = [this](std::string* text) {
        return sync_server_->sessions().LatestStats(supervisor_->GetStatus().pid,
                                                    std::chrono::milliseconds(3000), text, nullptr);
      };
    }
    admin_server_ = admin::AdminServer::Start(admin_address_, admin_tls_.cert(), admin_tls_.key(),
                                              admin_tls_.client_ca(), std::move(context), &error_);
    if (admin_server_ == nullptr) {
      // Traffic matters more than the API: serve the file's config and say so loudly.
      ZLOG_WARN("Admin API disabled: %s (fix admin_address and restart zproxyd)", error_.c_str());
    } else {
      ZLOG_INFO("Admin API on %s (config version %llu, from the %s)", admin_address_.c_str(),
                static_cast<unsigned long long>(startup_.version), startup_.source.c_str());
    }
  }

  // The readiness rule's inputs, as they are now (probes/readiness.h).
  probes::Readiness Readiness() const {
    DataplaneSupervisor::Status s = supervisor_->GetStatus();
    probes::ReadinessInputs in;
    in.stopping = s.stopping;
    in.pid = s.pid;
    in.started_with = s.version;
    in.current = store_.Current().version;
    in.have_sync = sync_server_ != nullptr;
    if (in.have_sync && s.pid > 0) {
      in.connected = sync_server_->sessions().ServingVersion(s.pid, &in.serving);
    }
    return probes::EvaluateReadiness(in);
  }

  // /live and the systemd watchdog: answered only if the supervisor's state can be read,
  // so a zproxyd stuck holding that lock stops answering (the probe times out, the
  // watchdog is not pinged) instead of saying it is fine.
  bool Live(std::string* why) const {
    (void)supervisor_->GetStatus();
    (void)why;
    return true;
  }

  // zproxyd serves metrics_address itself (/metrics forwarded to the data plane's private
  // address, /ready, /live): before the data plane starts, so /ready says 503 until it
  // serves. The systemd notifier shares the readiness rule.
  bool StartProbes() {
    auto ready = [this] { return Readiness(); };
    auto live = [this](std::string* why) { return Live(why); };
    notifier_ = std::make_unique<notify::ServiceNotifier>(std::move(sd_), ready, live);
    const std::string& address = store_.Current().config->metrics_address();
    if (address.empty()) return true;
    const std::string private_address = state::DataplaneMetricsAddress(address);
    probes::ProbeServer::Handlers h;
    h.ready = ready;
    h.live = live;
    h.metrics = [this, private_address](std::string* body, std::string* error) {
      if (!admin::ScrapeMetrics(private_address, 3000, body, error)) return false;
      if (discovery_ != nullptr) *body += discovery_->PrometheusText();  // zproxyd's own
      if (sidecar_configured_) {
        *body += bpf::LocalHopsPrometheusText(local_hops_.attached(),
                                              local_hops_.attached() ? local_hops_.stats_fd() : -1);
      }
      if (const fleet::FleetSource* f = fleet_metrics_.load()) *body += f->PrometheusText();
      return true;
    };
    probe_server_ = probes::ProbeServer::Start(address, std::move(h), {}, &error_);
    if (probe_server_ == nullptr) {
      ZLOG_ERROR("%s", error_.c_str());
      return false;
    }
    ZLOG_INFO("metrics, /ready and /live on %s (the data plane's /metrics behind it on %s)",
              address.c_str(), private_address.c_str());
    return true;
  }

  // SIGHUP re-reads the config file through the Admin API's ApplyConfig path
  // (reload/reload_file.h); systemd hears RELOADING=1, then READY=1.
  void StartReloader() {
    reload::Reloader::Hooks hooks;
    hooks.before = [this] { notifier_->Reloading(); };
    hooks.after = [this](const reload::ReloadOutcome& o) {
      notifier_->Reloaded(std::string(o.ok() ? "reloaded" : "reload failed") + ": config version " +
                          std::to_string(o.version));
    };
    reloader_ = std::make_unique<reload::Reloader>(manager_.get(), flags_.config_path, hooks);
  }

  // Data planes taken over (not adopted) drain once ours serves.
  void RetireOrphans() {
    if (orphan_.to_drain.empty()) return;
    retire_orphans_ = std::make_unique<sync::OrphanRetirer>(
        sync_server_->sessions(), orphan_.to_drain, [this] { return supervisor_->GetStatus().pid; },
        std::chrono::milliseconds(10000));
  }

  void Shutdown() {
    // First: its notifier thread pushes through manager_ and the supervisor.
    if (discovery_ != nullptr) discovery_->Stop();
    fleet_metrics_.store(nullptr);
    if (fleet_ != nullptr) fleet_->Stop();  // applies through manager_; revokes its lease
    if (reloader_ != nullptr) reloader_->Stop();
    notifier_->Stop();
    if (probe_server_ != nullptr) probe_server_->Stop();
    if (sync_server_ != nullptr) sync_server_->sessions().SetHelloObserver(nullptr);
    if (resyncer_ != nullptr) resyncer_->Stop();
    if (admin_server_ != nullptr) admin_server_->Shutdown();
    retire_orphans_.reset();
    if (sync_server_ != nullptr) sync_server_->Shutdown();
  }

  const Clock::time_point process_start_;
  const Flags flags_;
  std::string error_;
  // The validated file config, then (ChooseStartupConfig) the one to start with; moved into
  // store_ by PublishConfig.
  zproxy::v1::Config config_;
  std::string binary_;
  // Lives until exit: its destructor unpins.
  bpf::BpfRuntime bpf_runtime_;
  bpf::BpfOptions bpf_options_;
  // Detached on destruction (a clean exit), before bpf_runtime_ unpins.
  bpf::ProxyCgroup proxy_cgroup_;  // left last: after the data plane has stopped
  bpf::SidecarInterception sidecar_;
  bpf::InboundInterception inbound_;  // detached on destruction too
  bpf::LocalHops local_hops_;         // detached on destruction too
  bool sidecar_configured_ = false;
  health::HealthService health_;
  std::string workers_note_;
  uint32_t workers_ = 0;
  std::string file_text_;
  state::StartupConfig startup_;
  std::unique_ptr<sync::SyncServer> sync_server_;
  std::vector<ListenSocket> sockets_;
  OrphanStartup orphan_;
  uint32_t drain_ms_ = 0;
  std::string admin_address_;
  std::string state_path_;
  zproxy::v1::AdminTls admin_tls_;
  ConfigStore store_;
  std::unique_ptr<dns::Discovery> discovery_;  // reads store_; supervisor_ and manager_ use it
  std::unique_ptr<DataplaneSupervisor> supervisor_;
  std::unique_ptr<state::ConfigManager> manager_;
  std::unique_ptr<sync::Resyncer> resyncer_;
  // Fleet mode: the client until StartFleet hands it to fleet_, which applies through
  // manager_. fleet_metrics_ is what the /metrics thread reads (set once fleet_ runs).
  std::unique_ptr<fleet::EtcdClient> fleet_client_;
  int64_t fleet_revision_ = 0;
  bool fleet_reached_ = false;
  std::unique_ptr<fleet::FleetSource> fleet_;
  std::atomic<const fleet::FleetSource*> fleet_metrics_{nullptr};
  std::unique_ptr<admin::AdminServer> admin_server_;
  std::unique_ptr<sync::OrphanRetirer> retire_orphans_;
  notify::SdNotify sd_;  // moved into notifier_ by StartProbes
  std::unique_ptr<notify::ServiceNotifier> notifier_;
  std::unique_ptr<probes::ProbeServer> probe_server_;
  std::unique_ptr<reload::Reloader> reloader_;
};

int Main(int argc, char** argv) {
  const auto process_start = Clock::now();
  SetLogComponent("zproxyd");
  Flags flags;
  if (std::optional<int> code = ParseCommandLine(argc, argv, &flags)) return *code;
  config::LoadResult loaded;
  if (!LoadConfig(flags.config_path, &loaded)) return 1;
  if (flags.check) {
    std::printf("configuration %s is ok\n", flags.config_path.c_str());
    return 0;
  }
  // Reads and unsets systemd's variables: no thread exists yet (unsetenv is not
  // thread-safe) and the data plane must not inherit them.
  notify::SdNotify sd = notify::SdNotify::FromEnvironment();
  // Before any child or thread exists, so every thread inherits the mask.
  BlockSupervisorSignals();
  return Zproxyd(process_start, std::move(flags), std::move(loaded.config), std::move(sd)).Run();
}

}  // namespace
}  // namespace zproxy::controlplane

int main(int argc, char** argv) { return zproxy::controlplane::Main(argc, argv); }
