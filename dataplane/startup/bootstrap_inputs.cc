#include "dataplane/startup/bootstrap_inputs.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace zproxy::dataplane::startup {

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

uint32_t RaiseFileLimit() {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  return static_cast<uint32_t>(std::min<rlim_t>(rl.rlim_cur, 1u << 20));
}

bool MapHealthRegion(const zproxy::v1::DataplaneBootstrap& boot, std::vector<UniqueFd>* fds,
                     HealthRegion* region, HealthSlotTable* slots) {
  if (!boot.has_health_region_fd_index()) return true;
  std::string error;
  const uint32_t index = boot.health_region_fd_index();
  const HealthBacking backing = boot.health_region_kind() == zproxy::v1::HEALTH_REGION_BPF_MAP
                                    ? HealthBacking::kBpfMap
                                    : HealthBacking::kMemfd;
  if (index >= fds->size() ||
      !HealthRegion::MapShared((*fds)[index].get(), backing, region, &error)) {
    ZLOG_ERROR("health region (bootstrap fd %u): %s", index,
               index >= fds->size() ? "no such fd" : error.c_str());
    return false;
  }
  for (const auto& s : boot.health_slots()) slots->Add(s.cluster(), s.address(), s.slot());
  (*fds)[index].reset();  // the mapping stays valid
  ZLOG_INFO("health: reading %s (%zu endpoint slot(s))",
            backing == HealthBacking::kBpfMap ? "the BPF map zproxy_health" : "a memfd region",
            slots->size());
  return true;
}

bool TakeSpliceMaps(const zproxy::v1::DataplaneBootstrap& boot, std::vector<UniqueFd>* fds,
                    PassthroughCaps* caps) {
  auto take = [fds](bool has, uint32_t index, int* out) {
    if (!has) return true;
    if (index >= fds->size()) return false;
    *out = (*fds)[index].release();
    return true;
  };
  if (!take(boot.has_splice_pairs_fd_index(), boot.splice_pairs_fd_index(), &caps->pairs_fd) ||
      !take(boot.has_splice_peer_fd_index(), boot.splice_peer_fd_index(), &caps->peer_fd) ||
      !take(boot.has_splice_counters_fd_index(), boot.splice_counters_fd_index(),
            &caps->counters_fd) ||
      !take(boot.has_sidecar_orig_by_peer_fd_index(), boot.sidecar_orig_by_peer_fd_index(),
            &caps->orig_by_peer_fd) ||
      !take(boot.has_sidecar_local_hops_fd_index(), boot.sidecar_local_hops_fd_index(),
            &caps->local_hops_fd)) {
    ZLOG_ERROR("bootstrap: a splice map fd index is out of range");
    return false;
  }
  return true;
}

bool AssignListenSockets(const zproxy::v1::DataplaneBootstrap& boot,
                         const std::vector<UniqueFd>& fds, uint32_t workers,
                         std::vector<std::vector<WorkerListenSocket>>* sockets) {
  sockets->assign(workers, {});
  for (int i = 0; i < boot.sockets_size(); i++) {
    const auto& s = boot.sockets(i);
    uint16_t listener = 0xffff;
    for (int l = 0; l < boot.config().listeners_size(); l++) {
      if (boot.config().listeners(l).name() == s.listener()) listener = static_cast<uint16_t>(l);
    }
    if (listener == 0xffff || s.worker() >= workers || static_cast<size_t>(i) >= fds.size()) {
      ZLOG_ERROR("bootstrap socket %d (listener \"%s\", worker %u) does not match the config", i,
                 s.listener().c_str(), s.worker());
      return false;
    }
    // Accepted sockets inherit TCP_NODELAY from their listener: responses are written
    // in pieces (head, then body buffers), and Nagle would hold a trailing small
    // segment until the client's delayed ACK (40 ms).
    int one = 1;
    setsockopt(fds[i].get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    (*sockets)[s.worker()].push_back(WorkerListenSocket{fds[i].get(), listener});
  }
  return true;
}

bool OpenAccessLog(const std::string& access_log, int* fd) {
  *fd = -1;
  if (access_log == "stderr") {
    *fd = 2;
  } else if (access_log == "stdout") {
    *fd = 1;
  } else if (!access_log.empty()) {
    *fd = open(access_log.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (*fd < 0) {
      ZLOG_ERROR("access_log %s: %s", access_log.c_str(), strerror(errno));
      return false;
    }
  }
  return true;
}

}  // namespace zproxy::dataplane::startup
