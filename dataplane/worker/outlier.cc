// Passive outlier detection: an endpoint that fails several requests in a row (connect
// errors, resets, read timeouts, malformed responses, 5xx) is ejected from this worker's
// load balancing for a period that doubles with each consecutive ejection. Complements
// the active health checks in zproxyd, which take an interval or more to notice.
#include "common/log.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

void Worker::RecordUpstreamResult(uint16_t cluster, uint32_t endpoint, bool ok) {
  ClusterState& cs = Cs(cluster);
  const ClusterRuntime& cfg = *cs.cfg;
  if (cfg.outlier_failures == 0 || endpoint >= cs.outliers.size()) return;
  OutlierState& st = cs.outliers[endpoint];
  if (ok) {
    st.failures = 0;
    return;
  }
  if (++st.failures < cfg.outlier_failures || st.ejected) return;
  st.failures = 0;
  upstream::EndpointSet& lb = *cs.lb;
  // Never eject the last eligible endpoint: a degraded answer beats none.
  if (lb.EligibleCount() <= 1) return;
  // A long quiet period since the last ejection starts the doubling over.
  if (st.ejections != 0 && NowMs() - st.last_ejected_ms > cfg.outlier_max_ms * 2) st.ejections = 0;
  uint64_t period = static_cast<uint64_t>(cfg.outlier_base_ms)
                    << std::min<uint8_t>(st.ejections, 16);
  if (period > cfg.outlier_max_ms) period = cfg.outlier_max_ms;
  st.ejected = true;
  st.until_ms = NowMs() + static_cast<uint32_t>(period);
  st.last_ejected_ms = NowMs();
  if (st.ejections < 255) st.ejections++;
  lb.SetEjected(endpoint, true);
  stats_.upstream_ejections.Add();
  stats_.upstream_ejected.Add();
  ZLOG_WARN("worker %u: ejecting %s endpoint %s for %lu ms after %u consecutive failures",
            options_.index, cfg.name.c_str(), cfg.endpoint_names[endpoint].c_str(),
            static_cast<unsigned long>(period), cfg.outlier_failures);
}

void Worker::ExpireEjections() {
  for (auto& cs : cstates_) {
    if (cs == nullptr) continue;
    for (size_t e = 0; e < cs->outliers.size(); e++) {
      OutlierState& st = cs->outliers[e];
      if (!st.ejected || static_cast<int32_t>(NowMs() - st.until_ms) < 0) continue;
      st.ejected = false;
      cs->lb->SetEjected(static_cast<uint32_t>(e), false);
      stats_.upstream_ejected.Sub();
      ZLOG_INFO("worker %u: %s endpoint %s back in rotation", options_.index, cs->cfg->name.c_str(),
                cs->cfg->endpoint_names[e].c_str());
    }
  }
}

}  // namespace zproxy::dataplane
