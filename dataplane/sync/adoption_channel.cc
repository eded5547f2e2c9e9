#include "dataplane/sync/adoption_channel.h"

#include <pthread.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/handoff/handoff.h"
#include "common/health_region.h"
#include "common/log.h"

namespace zproxy::dataplane {

bool AdoptionChannel::Start(std::string* error) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    *error = std::string("adoption channel: socketpair: ") + std::strerror(errno);
    return false;
  }
  ours_.reset(sv[0]);
  theirs_.reset(sv[1]);
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "zp-adopt");
    Loop();
  });
  return true;
}

void AdoptionChannel::Stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  shutdown(ours_.get(), SHUT_RDWR);  // recvmsg returns 0
  thread_.join();
}

void AdoptionChannel::Loop() {
  while (!stopping_.load()) {
    zproxy::v1::DataplaneBootstrap message;
    std::vector<UniqueFd> fds;
    std::string error;
    if (!handoff::ReceiveBootstrap(ours_.get(), &message, &fds, &error)) {
      if (stopping_.load()) return;
      // A zproxyd that died halfway through its message: wait for the next one.
      ZLOG_WARN("adoption: unreadable message from a new zproxyd (%s); ignored", error.c_str());
      continue;
    }
    const char answer = Handle(message, &fds);
    if (send(ours_.get(), &answer, 1, MSG_NOSIGNAL) != 1 && !stopping_.load()) {
      ZLOG_WARN("adoption: cannot answer zproxyd: %s", std::strerror(errno));
    }
  }
}

char AdoptionChannel::Handle(const zproxy::v1::DataplaneBootstrap& message,
                             std::vector<UniqueFd>* fds) {
  if (!message.has_health_region_fd_index() || message.health_region_fd_index() >= fds->size()) {
    ZLOG_WARN("adoption: message without a health region; ignored");
    return 'N';
  }
  const bool bpf = message.health_region_kind() == zproxy::v1::HEALTH_REGION_BPF_MAP;
  auto region = std::make_shared<HealthRegion>();
  std::string error;
  if (!HealthRegion::MapShared((*fds)[message.health_region_fd_index()].get(),
                               bpf ? HealthBacking::kBpfMap : HealthBacking::kMemfd, region.get(),
                               &error)) {
    ZLOG_WARN("adoption: %s; health stays on the previous region", error.c_str());
    return 'N';
  }
  HealthSlotTable slots;
  for (const auto& s : message.health_slots()) slots.Add(s.cluster(), s.address(), s.slot());
  const size_t count = slots.size();
  ConfigApplier::Result r = applier_->RebindHealth(std::move(region), std::move(slots));
  if (!r.ok) {
    ZLOG_WARN("adoption: re-attaching health failed: %s", r.reason.c_str());
    return 'N';
  }
  ZLOG_INFO("adoption: health re-attached to %s (%zu endpoint slot(s)) in %llu us",
            bpf ? "the BPF map zproxy_health" : "a new memfd region", count,
            static_cast<unsigned long long>(r.apply_us));
  return 'R';
}

}  // namespace zproxy::dataplane
