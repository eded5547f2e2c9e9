#include "controlplane/startup/health_start.h"

#include "common/log.h"

namespace zproxy::controlplane::startup {

bool StartHealthChecks(const std::string& bpffs_path, const bpf::BpfOptions& options,
                       bpf::BpfRuntime* bpf_runtime, health::HealthService* health) {
  std::string error;
  health::BpfHealthStore store;
  health::BpfHealthStore* bpf_store = nullptr;
  if (bpf::HealthMap* map = bpf_runtime->LoadHealthMap(bpffs_path, options)) {
    store.map_fd = map->fd();
    store.share_fd = map->ShareFd();
    store.name_slot = [map](uint32_t slot, const std::string& cluster, const std::string& address) {
      map->SetSlotName(slot, cluster, address);
    };
    store.clear_slot = [map](uint32_t slot) { map->ClearSlotName(slot); };
    store.clear_all = [map] { map->ClearSlotNames(); };
    if (store.share_fd.valid()) bpf_store = &store;
  }
  if (!health->Start(&error, bpf_store)) {
    if (bpf_store == nullptr) {
      ZLOG_ERROR("%s", error.c_str());
      return false;
    }
    ZLOG_WARN("%s: health lives in a memfd region", error.c_str());
    if (!health->Start(&error)) {
      ZLOG_ERROR("%s", error.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace zproxy::controlplane::startup
