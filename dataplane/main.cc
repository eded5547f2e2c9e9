// zproxy-dataplane: started by zproxyd with --control-fd. Receives the listen sockets
// and the config snapshot, runs one io_uring worker per CPU, serves /metrics, and drains
// on SIGTERM.
//
// Start-up is a list of steps (Dataplane::Run), in an order that matters: everything that
// needs root (mapping the health region, opening the access log, probing kTLS, binding
// /metrics, creating the io_uring rings) comes before the privilege drop, and nothing is
// served before every worker has its ring. The bigger steps live in dataplane/startup/.
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/handoff/handoff.h"
#include "common/health_region.h"
#include "common/log.h"
#include "dataplane/config_applier.h"
#include "dataplane/dns/resolver.h"
#include "dataplane/metrics/metrics_server.h"
#include "dataplane/privileges/bpf_access.h"
#include "dataplane/privileges/drop.h"
#include "dataplane/proxy/passthrough_mode.h"
#include "dataplane/snapshot.h"
#include "dataplane/startup/bootstrap_inputs.h"
#include "dataplane/startup/report.h"
#include "dataplane/startup/worker_threads.h"
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

bool EnvIsOne(const char* name) {
  const char* v = getenv(name);
  return v != nullptr && strcmp(v, "1") == 0;
}

// The data plane's life, one method per step, in the order Run() calls them. The members
// are declared in the order the steps create them, so they are destroyed in reverse: the
// sync client and adoption channel before the applier, the workers before the resolver
// and the metrics server, the bootstrap fds last.
class Dataplane {
 public:
  explicit Dataplane(int control_fd) : control_fd_(control_fd) {}

  // Returns the process's exit status: 0 after a drain, 1 when start-up fails.
  int Run() {
    nofile_ = startup::RaiseFileLimit();
    if (!ReceiveBootstrap()) return 1;
    if (!startup::MapHealthRegion(boot_, &fds_, health_region_.get(), &health_slots_)) return 1;
    if (!startup::TakeSpliceMaps(boot_, &fds_, &passthrough_)) return 1;
    ApplyFdInstallOverride();
    if (!BuildFirstSnapshot()) return 1;
    if (!AssignListenSockets()) return 1;
    BlockSignals();
    if (!startup::OpenAccessLog(boot_.config().access_log(), &access_log_fd_)) return 1;
    ProbeKernelTls();
    BindMetrics();
    CreateWorkers();
    if (!threads_.Start(pool_, drop_options_)) return 1;
    if (!DropPrivileges()) return 1;
    StartResolver();
    ReportPaths();
    StartConfigApplier();
    ServeMetrics();
    PrepareSync();
    // Workers serve only once /metrics is bound, so "answers requests" implies "answers
    // scrapes" (tests and the handover rely on it).
    threads_.Release();
    StartSync();
    ReportReadiness();
    WaitForStopSignal();
    Drain();
    return 0;
  }

 private:
  bool ReceiveBootstrap() {
    if (!handoff::ReceiveBootstrap(control_fd_, &boot_, &fds_, &error_)) {
      ZLOG_ERROR("cannot receive bootstrap from zproxyd: %s", error_.c_str());
      return false;
    }
    return true;
  }

  // Tests only: behave as on a kernel without IORING_OP_FIXED_FD_INSTALL (tunnels of HTTP
  // listeners then copy); the one log line comes with the other kernel paths
  // (ReportPaths).
  void ApplyFdInstallOverride() {
    if (EnvIsOne("ZPROXY_DISABLE_FD_INSTALL")) passthrough_.fd_install = false;
  }

  bool BuildFirstSnapshot() {
    snap_ = BuildSnapshot(boot_.config(), boot_.config_version(), &error_, health_region_,
                          &health_slots_, &ticket_keys_);
    if (snap_ == nullptr) {
      ZLOG_ERROR("config rejected: %s", error_.c_str());
      return false;
    }
    return true;
  }

  bool AssignListenSockets() {
    cpus_ = startup::AffinityCpus();
    workers_ = boot_.workers() != 0 ? boot_.workers()
                                    : static_cast<uint32_t>(std::max<size_t>(1, cpus_.size()));
    return startup::AssignListenSockets(boot_, fds_, workers_, &sockets_);
  }

  // Signals are handled by the main thread only (sigwait); workers never see them.
  void BlockSignals() {
    sigemptyset(&sigs_);
    sigaddset(&sigs_, SIGTERM);
    sigaddset(&sigs_, SIGINT);
    sigaddset(&sigs_, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs_, nullptr);
    signal(SIGPIPE, SIG_IGN);
  }

  void ProbeKernelTls() {
    // Tests only: attempt kTLS even without kernel support (dataplane/tls/kernel_offload.h).
    if (EnvIsOne("ZPROXY_KTLS_ALWAYS_ATTEMPT")) {
      tls::ForceKernelOffloadAttempts(true);
      ZLOG_WARN("ZPROXY_KTLS_ALWAYS_ATTEMPT=1: kTLS is attempted on every TLS connection");
    }
    // kTLS is probed here, once, before any handshake (ktls::Detect logs the one line), and
    // before the privilege drop: the kernel autoloads the "tls" ULP module only for a caller
    // with CAP_NET_ADMIN; once loaded, every connection may use it unprivileged.
    tls::KernelOffloadAvailable();
  }

  // /metrics is bound before the drop (a port below 1024 works too), served later.
  void BindMetrics() {
    if (boot_.config().metrics_address().empty()) return;
    metrics_bound_ = metrics_.Bind(boot_.config().metrics_address(), &error_);
    if (!metrics_bound_) ZLOG_ERROR("%s", error_.c_str());
  }

  // Everything that needs root is done, except creating the io_uring rings: each worker
  // creates its ring and then drops its own thread's privileges (capabilities are per
  // thread); the main thread drops last, before any other thread starts.
  void CreateWorkers() {
    drop_options_ = privileges::Options{boot_.config().dataplane_user(),
                                        boot_.config().dataplane_keep_privileges()};
    const auto& ur = boot_.config().io_uring();
    for (uint32_t w = 0; w < workers_; w++) {
      WorkerOptions opt;
      opt.index = w;
      opt.cpu = cpus_.empty() ? -1 : cpus_[w % cpus_.size()];
      opt.ring.sq_depth = ur.sq_depth() != 0 ? ur.sq_depth() : 4096;
      opt.ring.sqpoll = ur.sqpoll();
      // Leave room for upstream sockets and the process's own fds (they use the normal
      // table, which shares the same limit).
      opt.ring.max_files = std::max<uint32_t>(64, std::min<uint32_t>(65536, nofile_ / 2));
      opt.ring.sqpoll_idle_ms = ur.sqpoll_idle_ms() != 0 ? ur.sqpoll_idle_ms() : 1000;
      opt.buf_count = ur.buf_count() != 0 ? ur.buf_count() : 1024;
      opt.buf_size = ur.buf_size() != 0 ? ur.buf_size() : 32768;
      opt.access_log_fd = access_log_fd_;
      opt.access_log_json = boot_.config().access_log_format() == "json";
      opt.passthrough = passthrough_;
      opt.resolver = &resolver_;
      pool_.push_back(std::make_unique<Worker>(opt, snap_, sockets_[w]));
    }
  }

  // The main thread drops last: the workers dropped their own threads' privileges, and no
  // other thread may exist yet (privileges::Drop checks).
  bool DropPrivileges() {
    drop_options_.dropped_threads = static_cast<int>(workers_);
    if (!privileges::Drop(drop_options_, &privs_, &error_)) {
      ZLOG_ERROR("%s: refusing to serve with privileges (dataplane_keep_privileges: true opts out)",
                 error_.c_str());
      threads_.Abort();
      return false;
    }
    if (privs_.state == "dropped") {
      ZLOG_INFO("%s", privs_.summary.c_str());
    } else {
      ZLOG_WARN("%s", privs_.summary.c_str());
    }
    return true;
  }

  void StartResolver() {
    // Started only now, so it runs with the dropped credentials (and the drop's check that
    // no other thread exists holds). getaddrinfo reads world-readable files only.
    resolver_.Start();
    // Workers insert sockets into the SOCKHASH with bpf(); a kernel refusing it without
    // CAP_BPF (dataplane/privileges/bpf_access.h) makes each pairing fall back to splice.
    if (passthrough_.sockmap() && !privileges::BpfMapUsable(passthrough_.pairs_fd, &error_)) {
      ZLOG_WARN("fallback: %s; pass-through connections are spliced instead", error_.c_str());
    }
  }

  // The start-up lines: what is served where, the kernel paths taken, each listener's
  // pass-through mode. The workers already hold their copy of passthrough_; what the ring
  // can do is recorded here for the log lines and /metrics.
  void ReportPaths() {
    startup::LogServing(snap_->version, workers_, cpus_);
    startup::ReportRingFeatures(pool_[0]->features(), boot_.config().io_uring().sqpoll(),
                                &passthrough_);
    startup::DescribePassthrough(*snap_, passthrough_, false, true);
    startup::DescribePassthrough(*snap_, passthrough_, true, true);
  }

  void StartConfigApplier() {
    // Applies config snapshots pushed by zproxyd to the running workers (dataplane/sync).
    std::vector<Worker*> worker_ptrs;
    for (auto& w : pool_) worker_ptrs.push_back(w.get());
    applier_ = std::make_unique<ConfigApplier>(worker_ptrs, snap_, health_region_, health_slots_,
                                               &ticket_keys_);
    // Lets a new zproxyd adopt this data plane if ours dies (dataplane/sync/adoption_channel.h).
    adoption_ = std::make_unique<AdoptionChannel>(applier_.get());
    if (!adoption_->Start(&error_)) {
      ZLOG_WARN("%s: this data plane cannot be adopted", error_.c_str());
    }
  }

  // The /metrics body, rendered from the snapshot that is live right now. Also the stats
  // the sync stream sends to zproxyd.
  void ServeMetrics() {
    base_info_ =
        startup::StartupInfo(pool_[0]->features(), passthrough_, privs_.state, &resolver_.stats());
    for (auto& w : pool_) stats_.push_back(&w->stats());
    render_metrics_ = [this] {
      std::shared_ptr<const Snapshot> live = applier_->current();
      return startup::RenderMetrics(base_info_, passthrough_, *live, stats_);
    };
    if (!metrics_bound_) return;
    if (!metrics_.Start(boot_.config().metrics_address(), render_metrics_, &error_)) {
      ZLOG_ERROR("%s", error_.c_str());
    } else {
      ZLOG_INFO("metrics on http://%s/metrics", boot_.config().metrics_address().c_str());
    }
  }

  // The stream from zproxyd (config snapshots in, ACK/NACK and stats out). Without it the
  // data plane serves the bootstrap config until a handover replaces it. Its gRPC event
  // engine is made before the workers serve, while descriptors are surely free
  // (SyncClient::Prepare); gRPC's threads start here, after the privilege drop.
  void PrepareSync() {
    if (boot_.sync_address().empty()) return;
    SyncClient::Options so;
    so.address = boot_.sync_address();
    so.pid = getpid();
    so.render_stats = render_metrics_;
    so.fill_hello = [this](zproxy::v1::Hello* hello) {
      if (adoption_->remote_fd() >= 0) hello->set_adoption_fd(adoption_->remote_fd());
      for (const ConfigApplier::SlotState& s : applier_->HealthStates()) {
        auto* h = hello->add_health();
        h->mutable_slot()->set_cluster(s.cluster);
        h->mutable_slot()->set_address(s.address);
        h->mutable_slot()->set_slot(s.slot);
        h->set_healthy(s.healthy);
      }
    };
    sync_ = std::make_unique<SyncClient>(std::move(so), applier_.get());
    sync_->Prepare();
  }

  void StartSync() {
    if (sync_ != nullptr) sync_->Start();
  }

  // Readiness for zproxyd's graceful handover: workers are accepting (and /metrics is up),
  // so the previous data plane may now be told to drain. One byte 'R' on the control socket.
  void ReportReadiness() {
    const char ready_byte = 'R';
    if (send(control_fd_, &ready_byte, 1, MSG_NOSIGNAL) != 1) {
      ZLOG_WARN("cannot report readiness to zproxyd: %s", strerror(errno));
    }
  }

  // SIGTERM or SIGINT starts the drain; SIGHUP is not a reload here (zproxyd pushes
  // config changes).
  void WaitForStopSignal() {
    drain_ms_ = boot_.config().drain_timeout_ms() != 0 ? boot_.config().drain_timeout_ms() : 10000;
    while (true) {
      int sig = 0;
      sigwait(&sigs_, &sig);
      if (sig == SIGHUP) {
        ZLOG_INFO("SIGHUP ignored: config changes arrive from zproxyd");
        continue;
      }
      ZLOG_INFO("signal %d: draining (up to %u ms)", sig, drain_ms_);
      break;
    }
  }

  void Drain() {
    if (sync_ != nullptr) sync_->Stop();  // a draining data plane takes no more snapshots
    adoption_->Stop();
    for (auto& w : pool_) w->Stop(drain_ms_);
    threads_.Join();
    metrics_.Stop();
    ZLOG_INFO("drained; exiting");
  }

  const int control_fd_;
  uint32_t nofile_ = 0;
  zproxy::v1::DataplaneBootstrap boot_;
  std::vector<UniqueFd> fds_;
  std::string error_;
  // The health region (zproxyd's active checks) is mapped read-only and outlives every
  // snapshot that reads it; without it every endpoint counts as healthy.
  std::shared_ptr<HealthRegion> health_region_ = std::make_shared<HealthRegion>();
  HealthSlotTable health_slots_;
  PassthroughCaps passthrough_;
  // TLS session ticket keys live as long as the process, so tickets survive config changes.
  tls::TicketKeyStore ticket_keys_;
  std::shared_ptr<const Snapshot> snap_;
  std::vector<int> cpus_;
  uint32_t workers_ = 0;
  std::vector<std::vector<WorkerListenSocket>> sockets_;
  sigset_t sigs_;
  // One O_APPEND descriptor shared by the workers; each flushes whole lines.
  int access_log_fd_ = -1;
  MetricsServer metrics_;
  bool metrics_bound_ = false;
  privileges::Options drop_options_;
  // CONNECT to host names: one resolver thread for the process, started after the
  // privilege drop. Declared before the workers; they close their inboxes when destroyed,
  // and the resolver drops answers for closed inboxes.
  dns::Resolver resolver_;
  std::vector<std::unique_ptr<Worker>> pool_;
  startup::WorkerThreads threads_;
  privileges::Outcome privs_;
  std::unique_ptr<ConfigApplier> applier_;
  std::unique_ptr<AdoptionChannel> adoption_;
  DataplaneInfo base_info_;
  std::vector<const WorkerStats*> stats_;
  std::function<std::string()> render_metrics_;
  std::unique_ptr<SyncClient> sync_;
  uint32_t drain_ms_ = 0;
};

int Run(int argc, char** argv) {
  SetLogComponent("dataplane");
  Args args;
  if (!ParseArgs(argc, argv, &args)) return 2;
  return Dataplane(args.control_fd).Run();
}

}  // namespace
}  // namespace zproxy::dataplane

int main(int argc, char** argv) { return zproxy::dataplane::Run(argc, argv); }
