#include "dataplane/startup/report.h"

#include <cctype>

#include "common/log.h"
#include "common/splice_pairs.h"
#include "dataplane/http1/http1.h"
#include "dataplane/metrics/sni_counters.h"
#include "dataplane/tls/kernel_offload.h"

namespace zproxy::dataplane::startup {

void LogServing(uint64_t config_version, uint32_t workers, const std::vector<int>& cpus) {
  std::string cpu_list;
  for (uint32_t w = 0; w < workers && !cpus.empty(); w++) {
    if (!cpu_list.empty()) cpu_list += ",";
    cpu_list += std::to_string(cpus[w % cpus.size()]);
  }
  ZLOG_INFO("serving config version %lu with %u worker(s) on CPUs [%s]; parser SIMD: %s",
            static_cast<unsigned long>(config_version), workers, cpu_list.c_str(),
            http1::SimdLevel());
}

void ReportRingFeatures(const io::RingFeatures& f, bool sqpoll_requested, PassthroughCaps* caps) {
  ZLOG_INFO("io_uring: single_issuer=%d defer_taskrun=%d sqpoll=%d registered_files=%d",
            f.single_issuer, f.defer_taskrun, f.sqpoll, f.registered_files);
  if (!f.defer_taskrun)
    ZLOG_WARN("fallback: IORING_SETUP_DEFER_TASKRUN unavailable (kernel < 6.1)");
  if (!f.send_zc) ZLOG_WARN("fallback: IORING_OP_SEND_ZC unavailable; large bodies use plain send");
  if (sqpoll_requested && !f.sqpoll)
    ZLOG_WARN("fallback: SQPOLL requested but refused by the kernel");
  caps->splice = f.splice;
  if (!f.fixed_fd_install) {
    caps->fd_install = false;
    ZLOG_WARN(
        "fallback: IORING_OP_FIXED_FD_INSTALL unavailable (kernel < 6.8): WebSocket and CONNECT "
        "tunnels on HTTP listeners copy in userspace");
  } else if (!caps->fd_install) {
    ZLOG_WARN(
        "ZPROXY_DISABLE_FD_INSTALL=1: WebSocket and CONNECT tunnels on HTTP listeners copy in "
        "userspace");
  }
}

std::vector<DataplaneInfo::PassthroughListener> DescribePassthrough(const Snapshot& snapshot,
                                                                    const PassthroughCaps& caps,
                                                                    bool tunnels, bool log) {
  std::vector<DataplaneInfo::PassthroughListener> out;
  for (size_t i = 0; i < snapshot.listeners.size(); i++) {
    const ListenerRuntime& l = snapshot.listeners[i];
    if ((l.tcp_cluster >= 0) == tunnels) continue;
    std::string why;
    zproxy::v1::PassthroughMode asked = tunnels ? l.tunnel_mode : l.pass_mode;
    PassMode mode = tunnels ? ResolveTunnelMode(asked, l.tls != nullptr, caps, &why)
                            : ResolvePassMode(asked, caps, &why);
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
}

DataplaneInfo StartupInfo(const io::RingFeatures& f, const PassthroughCaps& caps,
                          const std::string& privileges, const dns::ResolverStats* resolver) {
  DataplaneInfo info;
  info.simd_level = http1::SimdLevel();
  info.single_issuer = f.single_issuer;
  info.defer_taskrun = f.defer_taskrun;
  info.sqpoll = f.sqpoll;
  info.send_zc = f.send_zc;
  info.registered_files = f.registered_files;
  info.ktls = tls::KernelOffloadAvailable();

  info.sockmap = caps.sockmap();
  info.splice = caps.splice;
  info.fd_install = caps.fd_install;
  std::string unused;
  info.passthrough_auto = PassModeName(ResolvePassMode(zproxy::v1::AUTO, caps, &unused));
  info.privileges = privileges;
  info.resolver = resolver;
  return info;
}

std::string RenderMetrics(const DataplaneInfo& base, const PassthroughCaps& caps,
                          const Snapshot& live, const std::vector<const WorkerStats*>& stats) {
  DataplaneInfo info = base;
  info.config_version = live.version;
  const HealthRegion* region = live.health_region.get();
  info.health_region = region == nullptr                             ? "none"
                       : region->backing() == HealthBacking::kBpfMap ? "bpf_map"
                                                                     : "memfd";
  info.passthrough_listeners = DescribePassthrough(live, caps, false, false);
  info.tunnel_listeners = DescribePassthrough(live, caps, true, false);
  if (caps.counters_fd >= 0) {
    info.has_splice_counters = ReadSpliceCounters(caps.counters_fd, &info.splice_counters);
  }
  std::vector<SniCounters::Sample> routed, failures;
  SniCounters::Process().Collect(&routed, &failures);
  for (auto& s : routed)
    info.sni_routed.push_back({std::move(s.listener), std::move(s.label), s.value});
  for (auto& s : failures) {
    info.client_hello_failures.push_back({std::move(s.listener), std::move(s.label), s.value});
  }
  for (const auto& c : live.clusters) {
    for (size_t i = 0; i < c.endpoint_names.size(); i++) {
      info.upstream_health.push_back({c.name, c.endpoint_names[i], c.health[i]});
    }
  }
  if (live.connections != nullptr) {
    for (size_t i = 0; i < live.listeners.size() && i < live.connections->size(); i++) {
      info.listener_connections.push_back(
          {live.listeners[i].name, live.connections->open(i), live.connections->refused(i)});
    }
  }
  if (live.rate_limits != nullptr) {
    for (const auto& r : live.rate_limits->routes()) {
      info.rate_limited_routes.push_back({r.listener, r.route, r.limiter->counters().limited.load(),
                                          r.limiter->counters().collisions.load()});
    }
  }
  return RenderPrometheus(stats, info);
}

}  // namespace zproxy::dataplane::startup
