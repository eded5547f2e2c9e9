// What the data plane says about the paths it took: the start-up log lines (one per
// fallback, one per pass-through listener) and the /metrics body built on them. Every
// fallback is logged once at start and shown in zproxy_dataplane_info (DESIGN.md: "Kernel
// features: detect, use, fall back").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/io/ring.h"
#include "dataplane/metrics/prometheus.h"
#include "dataplane/proxy/passthrough_mode.h"
#include "dataplane/snapshot.h"

namespace zproxy::dataplane::startup {

// "serving config version V with N worker(s) on CPUs [..]; parser SIMD: ..".
void LogServing(uint64_t config_version, uint32_t workers, const std::vector<int>& cpus);

// Logs the ring's io_uring features and a fallback line for each one missing, and records
// in *caps what the ring can do for pass-through (splice, fixed fd install).
void ReportRingFeatures(const io::RingFeatures& f, bool sqpoll_requested, PassthroughCaps* caps);

// The pass-through mode of each listener of `snapshot`: tcp_proxy listeners (TcpProxy.mode)
// when `tunnels` is false, the WebSocket/CONNECT tunnels of HTTP listeners
// (Listener.tunnel_mode) when true. With `log`, one line per listener: the mode it gets,
// and why if it is not the one asked for.
std::vector<DataplaneInfo::PassthroughListener> DescribePassthrough(const Snapshot& snapshot,
                                                                    const PassthroughCaps& caps,
                                                                    bool tunnels, bool log);

// The parts of zproxy_dataplane_info fixed at start.
DataplaneInfo StartupInfo(const io::RingFeatures& f, const PassthroughCaps& caps,
                          const std::string& privileges, const dns::ResolverStats* resolver);

// The /metrics body: `base` completed with what the live snapshot says (config version,
// health region, pass-through modes, upstream health) and the splice counters.
std::string RenderMetrics(const DataplaneInfo& base, const PassthroughCaps& caps,
                          const Snapshot& live, const std::vector<const WorkerStats*>& stats);

}  // namespace zproxy::dataplane::startup
