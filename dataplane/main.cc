// zproxy-dataplane: started by zproxyd with --control-fd. Receives the listen sockets
// and the config snapshot, runs one io_uring worker per CPU, serves /metrics, and drains
// on SIGTERM.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/handoff/handoff.h"
#include "common/health_region.h"
#include "common/log.h"
#include "common/splice_pairs.h"
#include "dataplane/config_applier.h"
#include "dataplane/dns/resolver.h"
#include "dataplane/http1/http1.h"
#include "dataplane/metrics/metrics_server.h"
#include "dataplane/metrics/prometheus.h"
#include "dataplane/privileges/bpf_access.h"
#include "dataplane/privileges/drop.h"
#include "dataplane/proxy/passthrough_mode.h"
#include "dataplane/snapshot.h"
#include "dataplane/sync/adoption_channel.h"
#include "dataplane/sync/sync_client.h"
#include "dataplane/tls/kernel_offload.h"
#include "dataplane/tls/ticket_keys.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {
namespace {

struct Args {
  int control_fd = -1;
};

bool ParseArgs(int argc, char** argv, Args* args) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--control-fd") == 0 && i + 1 < argc) {
      args->control_fd = atoi(argv[++i]);
    } else {
      fprintf(stderr,
              "usage: zproxy-dataplane --control-fd N\n"
              "(started by zproxyd, which passes the listen sockets and config)\n");
      return false;
    }
  }
  if (args->control_fd < 0) {
    fprintf(stderr, "zproxy-dataplane: --control-fd is required (it is started by zproxyd)\n");
    return false;
  }
  return true;
}

std::vector<int> AffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    for (int i = 0; i < CPU_SETSIZE; i++) {
      if (CPU_ISSET(i, &set)) cpus.push_back(i);
    }
  }
  return cpus;
}

// Raises the soft fd limit to the hard one and returns it. Each worker's registered file
// table (where accepted sockets live) is sized from it: the kernel charges the table
// against RLIMIT_NOFILE.
uint32_t RaiseFileLimit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return static_cast<uint32_t>(std::min<rlim_t>(rl.rlim_cur, 1u << 20));
}

int Run(int argc, char** argv) {
  SetLogComponent("dataplane");
  Args args;
  if (!ParseArgs(argc, argv, &args)) return 2;
  uint32_t nofile = RaiseFileLimit();

  zproxy::v1::DataplaneBootstrap boot;
  std::vector<UniqueFd> fds;
  std::string error;
  if (!handoff::ReceiveBootstrap(args.control_fd, &boot, &fds, &error)) {
    ZLOG_ERROR("cannot receive bootstrap from zproxyd: %s", error.c_str());
    return 1;
  }
  // The health region (zproxyd's active checks: the pinned BPF map, or its memfd fallback)
  // is mapped read-only and outlives every snapshot that reads it; without it every
  // endpoint counts as healthy.
  auto health_region = std::make_shared<HealthRegion>();
  HealthSlotTable health_slots;
  if (boot.has_health_region_fd_index()) {
    const uint32_t index = boot.health_region_fd_index();
    const HealthBacking backing = boot.health_region_kind() == zproxy::v1::HEALTH_REGION_BPF_MAP
                                      ? HealthBacking::kBpfMap
                                      : HealthBacking::kMemfd;
    if (index >= fds.size() ||
        !HealthRegion::MapShared(fds[index].get(), backing, health_region.get(), &error)) {
      ZLOG_ERROR("health region (bootstrap fd %u): %s", index,
                 index >= fds.size() ? "no such fd" : error.c_str());
      return 1;
    }
    for (const auto& s : boot.health_slots()) health_slots.Add(s.cluster(), s.address(), s.slot());
    fds[index].reset();  // the mapping stays valid
    ZLOG_INFO("health: reading %s (%zu endpoint slot(s))",
              backing == HealthBacking::kBpfMap ? "the BPF map zproxy_health" : "a memfd region",
              health_slots.size());
  }
  // Kernel splicing: the SOCKHASH, peer table and counters zproxyd loaded (absent without
  // BPF). The fds stay open for the process's life; workers only update/read the maps.
  PassthroughCaps passthrough;
  {
    auto take = [&](bool has, uint32_t index, int* out) {
      if (!has) return true;
      if (index >= fds.size()) return false;
      *out = fds[index].release();
      return true;
    };
    if (!take(boot.has_splice_pairs_fd_index(), boot.splice_pairs_fd_index(),
              &passthrough.pairs_fd) ||
        !take(boot.has_splice_peer_fd_index(), boot.splice_peer_fd_index(), &passthrough.peer_fd) ||
        !take(boot.has_splice_counters_fd_index(), boot.splice_counters_fd_index(),
              &passthrough.counters_fd)) {
      ZLOG_ERROR("bootstrap: a splice map fd index is out of range");
      return 1;
    }
  }
  // Tests only: behave as on a kernel without IORING_OP_FIXED_FD_INSTALL (tunnels of HTTP
  // listeners then copy); the one log line comes with the other kernel paths below.
  if (const char* v = getenv("ZPROXY_DISABLE_FD_INSTALL"); v != nullptr && strcmp(v, "1") == 0) {
    passthrough.fd_install = false;
  }
  // TLS session ticket keys live as long as the process, so tickets survive config changes.
  tls::TicketKeyStore ticket_keys;
  std::shared_ptr<const Snapshot> snap = BuildSnapshot(boot.config(), boot.config_version(), &error,
                                                       health_region, &health_slots, &ticket_keys);
  if (snap == nullptr) {
    ZLOG_ERROR("config rejected: %s", error.c_str());
    return 1;
  }

  std::vector<int> cpus = AffinityCpus();
  uint32_t workers = boot.workers() != 0 ? boot.workers()
                                         : static_cast<uint32_t>(std::max<size_t>(1, cpus.size()));
  std::vector<std::vector<WorkerListenSocket>> sockets(workers);
  for (int i = 0; i < boot.sockets_size(); i++) {
    const auto& s = boot.sockets(i);
    uint16_t listener = 0xffff;
    for (int l = 0; l < boot.config().listeners_size(); l++) {
      if (boot.config().listeners(l).name() == s.listener()) listener = static_cast<uint16_t>(l);
    }
    if (listener == 0xffff || s.worker() >= workers || static_cast<size_t>(i) >= fds.size()) {
      ZLOG_ERROR("bootstrap socket %d (listener \"%s\", worker %u) does not match the config", i,
                 s.listener().c_str(), s.worker());
      return 1;
    }
    // Accepted sockets inherit TCP_NODELAY from their listener: responses are written
    // in pieces (head, then body buffers), and Nagle would hold a trailing small
    // segment until the client's delayed ACK (40 ms).
    int one = 1;
    setsockopt(fds[i].get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    sockets[s.worker()].push_back(WorkerListenSocket{fds[i].get(), listener});
  }

  // Signals are handled by the main thread only (sigwait); workers never see them.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // One O_APPEND descriptor shared by the workers; each flushes whole lines.
  int access_log_fd = -1;
  const std::string& access_log = boot.config().access_log();
  if (access_log == "stderr") {
    access_log_fd = 2;
  } else if (access_log == "stdout") {
    access_log_fd = 1;
  } else if (!access_log.empty()) {
    access_log_fd = open(access_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (access_log_fd < 0) {
      ZLOG_ERROR("access_log %s: %s", access_log.c_str(), strerror(errno));
      return 1;
    }
  }
  // Tests only: attempt kTLS even without kernel support (dataplane/tls/kernel_offload.h).
  if (const char* v = getenv("ZPROXY_KTLS_ALWAYS_ATTEMPT"); v != nullptr && strcmp(v, "1") == 0) {
    tls::ForceKernelOffloadAttempts(true);
    ZLOG_WARN("ZPROXY_KTLS_ALWAYS_ATTEMPT=1: kTLS is attempted on every TLS connection");
  }
  // kTLS is probed here, once, before any handshake (ktls::Detect logs the one line), and
  // before the privilege drop: the kernel autoloads the "tls" ULP module only for a caller
  // with CAP_NET_ADMIN; once loaded, every connection may use it unprivileged.
  tls::KernelOffloadAvailable();

  // /metrics is bound before the drop (a port below 1024 works too), served later.
  MetricsServer metrics;
  bool metrics_bound = false;
  if (!boot.config().metrics_address().empty()) {
    metrics_bound = metrics.Bind(boot.config().metrics_address(), &error);
    if (!metrics_bound) ZLOG_ERROR("%s", error.c_str());
  }

  // Everything that needs root is done, except creating the io_uring rings: each worker
  // creates its ring and then drops its own thread's privileges (capabilities are per
  // thread); this thread drops last, before any other thread starts.
  privileges::Options drop_options{boot.config().dataplane_user(),
                                   boot.config().dataplane_keep_privileges()};

  // CONNECT to host names: one resolver thread for the process, started after the
  // privilege drop (below). Declared before the workers; they close their inboxes when
  // destroyed, and the resolver drops answers for closed inboxes.
  dns::Resolver resolver;

  const auto& ur = boot.config().io_uring();
  std::vector<std::unique_ptr<Worker>> pool;
  for (uint32_t w = 0; w < workers; w++) {
    WorkerOptions opt;
    opt.index = w;
    opt.cpu = cpus.empty() ? -1 : cpus[w % cpus.size()];
    opt.ring.sq_depth = ur.sq_depth() != 0 ? ur.sq_depth() : 4096;
    opt.ring.sqpoll = ur.sqpoll();
    // Leave room for upstream sockets and the process's own fds (they use the normal
    // table, which shares the same limit).
    opt.ring.max_files = std::max<uint32_t>(64, std::min<uint32_t>(65536, nofile / 2));
    opt.ring.sqpoll_idle_ms = ur.sqpoll_idle_ms() != 0 ? ur.sqpoll_idle_ms() : 1000;
    opt.buf_count = ur.buf_count() != 0 ? ur.buf_count() : 1024;
    opt.buf_size = ur.buf_size() != 0 ? ur.buf_size() : 32768;
    opt.access_log_fd = access_log_fd;
    opt.passthrough = passthrough;
    opt.resolver = &resolver;
    pool.push_back(std::make_unique<Worker>(opt, snap, sockets[w]));
  }

  // Each worker creates its ring on its own thread (SINGLE_ISSUER); startup waits for
  // all of them so a failure (io_uring blocked) is reported before serving.
  std::vector<std::thread> threads;
  std::vector<std::string> init_errors(workers);
  std::atomic<uint32_t> ready{0};
  std::atomic<bool> failed{false};
  // Workers serve only once /metrics is bound, so "answers requests" implies "answers
  // scrapes" (tests and the handover rely on it).
  std::atomic<bool> go{false};
  for (uint32_t w = 0; w < workers; w++) {
    threads.emplace_back([&, w] {
      char name[16];
      snprintf(name, sizeof(name), "zp-worker-%u", w);
      pthread_setname_np(pthread_self(), name);
      privileges::Outcome unused;
      privileges::Options worker_drop = drop_options;
      worker_drop.is_worker = true;
      if (!pool[w]->Init(&init_errors[w]) ||
          !privileges::Drop(worker_drop, &unused, &init_errors[w])) {
        failed.store(true);
        ready.fetch_add(1);
        return;
      }
      ready.fetch_add(1);
      while (!go.load() && !failed.load()) std::this_thread::yield();
      if (failed.load()) return;
      pool[w]->Run();
    });
  }
  while (ready.load() < workers) std::this_thread::yield();
  if (failed.load()) {
    for (auto& t : threads) t.join();
    for (uint32_t w = 0; w < workers; w++) {
      if (!init_errors[w].empty()) {
        ZLOG_ERROR("worker %u: %s", w, init_errors[w].c_str());
        break;
      }
    }
    return 1;
  }

  privileges::Outcome privs;
  drop_options.dropped_threads = static_cast<int>(workers);
  if (!privileges::Drop(drop_options, &privs, &error)) {
    ZLOG_ERROR("%s: refusing to serve with privileges (dataplane_keep_privileges: true opts out)",
               error.c_str());
    go.store(true);
    failed.store(true);
    for (auto& t : threads) t.join();
    return 1;
  }
  if (privs.state == "dropped") {
    ZLOG_INFO("%s", privs.summary.c_str());
  } else {
    ZLOG_WARN("%s", privs.summary.c_str());
  }
  // Started only now, so it runs with the dropped credentials (and the drop's check that
  // no other thread exists holds). getaddrinfo reads world-readable files only.
  resolver.Start();
  // Workers insert sockets into the SOCKHASH with bpf(); a kernel refusing it without
  // CAP_BPF (dataplane/privileges/bpf_access.h) makes each pairing fall back to splice.
  if (passthrough.sockmap() && !privileges::BpfMapUsable(passthrough.pairs_fd, &error)) {
    ZLOG_WARN("fallback: %s; pass-through connections are spliced instead", error.c_str());
  }

  const io::RingFeatures& f = pool[0]->features();
  ZLOG_INFO(
      "serving config version %lu with %u worker(s) on CPUs [%s]; parser SIMD: %s",
      static_cast<unsigned long>(snap->version), workers,
      [&] {
        std::string s;
        for (uint32_t w = 0; w < workers && !cpus.empty(); w++) {
          if (!s.empty()) s += ",";
          s += std::to_string(cpus[w % cpus.size()]);
        }
        return s;
      }()
          .c_str(),
      http1::SimdLevel());
  ZLOG_INFO("io_uring: single_issuer=%d defer_taskrun=%d sqpoll=%d registered_files=%d",
            f.single_issuer, f.defer_taskrun, f.sqpoll, f.registered_files);
  if (!f.defer_taskrun)
    ZLOG_WARN("fallback: IORING_SETUP_DEFER_TASKRUN unavailable (kernel < 6.1)");
  if (!f.send_zc) ZLOG_WARN("fallback: IORING_OP_SEND_ZC unavailable; large bodies use plain send");
  if (ur.sqpoll() && !f.sqpoll) ZLOG_WARN("fallback: SQPOLL requested but refused by the kernel");
  passthrough.splice = f.splice;
  if (!f.fixed_fd_install) {
    passthrough.fd_install = false;
    ZLOG_WARN(
        "fallback: IORING_OP_FIXED_FD_INSTALL unavailable (kernel < 6.8): WebSocket and CONNECT "
        "tunnels on HTTP listeners copy in userspace");
  } else if (!passthrough.fd_install) {
    ZLOG_WARN(
        "ZPROXY_DISABLE_FD_INSTALL=1: WebSocket and CONNECT tunnels on HTTP listeners copy in "
        "userspace");
  }
  // One line per tcp_proxy listener: the pass-through mode it gets, and why if it is not
  // the one asked for.
  // tunnels = false: tcp_proxy listeners (TcpProxy.mode); true: the WebSocket/CONNECT
  // tunnels of HTTP listeners (Listener.tunnel_mode).
  auto describe_passthrough = [&passthrough](const Snapshot& s, bool tunnels, bool log) {
    std::vector<DataplaneInfo::PassthroughListener> out;
    for (size_t i = 0; i < s.listeners.size(); i++) {
      const ListenerRuntime& l = s.listeners[i];
      if ((l.tcp_cluster >= 0) == tunnels) continue;
      std::string why;
      zproxy::v1::PassthroughMode asked = tunnels ? l.tunnel_mode : l.pass_mode;
      PassMode mode = tunnels ? ResolveTunnelMode(asked, l.tls != nullptr, passthrough, &why)
                              : ResolvePassMode(asked, passthrough, &why);
      std::string requested = zproxy::v1::PassthroughMode_Name(asked);
      for (char& ch : requested) ch = static_cast<char>(tolower(ch));
      const char* what = tunnels ? "tunnel" : "pass-through";
      if (log && why.empty()) {
        ZLOG_INFO("listener \"%s\": %s mode %s (requested %s)", l.name.c_str(), what,
                  PassModeName(mode), requested.c_str());
      } else if (log) {
        ZLOG_WARN("listener \"%s\": %s mode %s requested, using %s: %s", l.name.c_str(), what,
                  requested.c_str(), PassModeName(mode), why.c_str());
      }
      out.push_back({l.name, requested, PassModeName(mode)});
    }
    return out;
  };
  describe_passthrough(*snap, false, true);
  describe_passthrough(*snap, true, true);

  // Applies config snapshots pushed by zproxyd to the running workers (dataplane/sync).
  std::vector<Worker*> worker_ptrs;
  for (auto& w : pool) worker_ptrs.push_back(w.get());
  ConfigApplier applier(worker_ptrs, snap, health_region, health_slots, &ticket_keys);

  // Lets a new zproxyd adopt this data plane if ours dies (dataplane/sync/adoption_channel.h).
  AdoptionChannel adoption(&applier);
  if (!adoption.Start(&error)) ZLOG_WARN("%s: this data plane cannot be adopted", error.c_str());

  // The /metrics body, rendered from the snapshot that is live right now.
  DataplaneInfo base_info;
  base_info.simd_level = http1::SimdLevel();
  base_info.single_issuer = f.single_issuer;
  base_info.defer_taskrun = f.defer_taskrun;
  base_info.sqpoll = f.sqpoll;
  base_info.send_zc = f.send_zc;
  base_info.registered_files = f.registered_files;
  base_info.ktls = tls::KernelOffloadAvailable();

  base_info.sockmap = passthrough.sockmap();
  base_info.splice = passthrough.splice;
  base_info.fd_install = passthrough.fd_install;
  {
    std::string unused;
    base_info.passthrough_auto =
        PassModeName(ResolvePassMode(zproxy::v1::AUTO, passthrough, &unused));
  }
  base_info.privileges = privs.state;
  base_info.resolver = &resolver.stats();
  std::vector<const WorkerStats*> stats;
  for (auto& w : pool) stats.push_back(&w->stats());
  auto render_metrics = [&applier, stats, base_info, passthrough, describe_passthrough] {
    DataplaneInfo info = base_info;
    std::shared_ptr<const Snapshot> live = applier.current();
    info.config_version = live->version;
    const HealthRegion* region = live->health_region.get();
    info.health_region = region == nullptr                             ? "none"
                         : region->backing() == HealthBacking::kBpfMap ? "bpf_map"
                                                                       : "memfd";
    info.passthrough_listeners = describe_passthrough(*live, false, false);
    info.tunnel_listeners = describe_passthrough(*live, true, false);
    if (passthrough.counters_fd >= 0) {
      info.has_splice_counters = ReadSpliceCounters(passthrough.counters_fd, &info.splice_counters);
    }
    for (const auto& c : live->clusters) {
      for (size_t i = 0; i < c.endpoint_names.size(); i++) {
        info.upstream_health.push_back({c.name, c.endpoint_names[i], c.health[i]});
      }
    }
    return RenderPrometheus(stats, info);
  };

  if (metrics_bound) {
    if (!metrics.Start(boot.config().metrics_address(), render_metrics, &error)) {
      ZLOG_ERROR("%s", error.c_str());
    } else {
      ZLOG_INFO("metrics on http://%s/metrics", boot.config().metrics_address().c_str());
    }
  }

  go.store(true);

  // The stream from zproxyd (config snapshots in, ACK/NACK and stats out). Without it the
  // data plane serves the bootstrap config until a handover replaces it.
  std::unique_ptr<SyncClient> sync;
  if (!boot.sync_address().empty()) {
    SyncClient::Options so;
    so.address = boot.sync_address();
    so.pid = getpid();
    so.render_stats = render_metrics;
    so.fill_hello = [&adoption, &applier](zproxy::v1::Hello* hello) {
      if (adoption.remote_fd() >= 0) hello->set_adoption_fd(adoption.remote_fd());
      for (const ConfigApplier::SlotState& s : applier.HealthStates()) {
        auto* h = hello->add_health();
        h->mutable_slot()->set_cluster(s.cluster);
        h->mutable_slot()->set_address(s.address);
        h->mutable_slot()->set_slot(s.slot);
        h->set_healthy(s.healthy);
      }
    };
    sync = std::make_unique<SyncClient>(std::move(so), &applier);
    sync->Start();
  }

  // Readiness for zproxyd's graceful handover: workers are accepting (and /metrics is up),
  // so the previous data plane may now be told to drain. One byte 'R' on the control socket.
  {
    const char ready_byte = 'R';
    if (send(args.control_fd, &ready_byte, 1, MSG_NOSIGNAL) != 1) {
      ZLOG_WARN("cannot report readiness to zproxyd: %s", strerror(errno));
    }
  }

  uint32_t drain_ms =
      boot.config().drain_timeout_ms() != 0 ? boot.config().drain_timeout_ms() : 10000;
  while (true) {
    int sig = 0;
    sigwait(&sigs, &sig);
    if (sig == SIGHUP) {
      ZLOG_INFO("SIGHUP ignored: config changes arrive from zproxyd");
      continue;
    }
    ZLOG_INFO("signal %d: draining (up to %u ms)", sig, drain_ms);
    break;
  }
  if (sync != nullptr) sync->Stop();  // a draining data plane takes no more snapshots
  adoption.Stop();
  for (auto& w : pool) w->Stop(drain_ms);
  for (auto& t : threads) t.join();
  metrics.Stop();
  ZLOG_INFO("drained; exiting");
  return 0;
}

}  // namespace
}  // namespace zproxy::dataplane

int main(int argc, char** argv) { return zproxy::dataplane::Run(argc, argv); }
