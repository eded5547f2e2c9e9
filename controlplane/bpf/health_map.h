// The upstream health region as a pinned, mmapable BPF array (bpf/health.bpf.c): one
// entry whose value is exactly common/health_region.h's layout, so HealthRegion maps this
// fd instead of its memfd fallback and `bpftool map dump` names the fields. Beside it the
// name map zproxy_health_names (slot -> cluster, address) says whose byte each slot is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "bpf/health.skel.h"
#include "bpf/zproxy_structs.h"
#include "common/unique_fd.h"
#include "controlplane/bpf/options.h"
#include "controlplane/bpf/skeleton.h"

namespace zproxy::controlplane::bpf {

class HealthMap {
 public:
  // Loads the map (adopting a compatible pin: contents survive a zproxyd restart), fills
  // a fresh one with the header and all-healthy slots, pins it.
  bool Load(const BpfOptions& options, std::string* error);

  int fd() const { return bpf_map__fd(skel_->maps.zproxy_health); }
  int names_fd() const { return bpf_map__fd(skel_->maps.zproxy_health_names); }
  bool reused() const { return !skel_.pins().reused().empty(); }

  // The fd the data plane gets (it maps it PROT_READ). A dup of the read-write fd: the
  // kernel cannot mmap a BPF_F_RDONLY map fd at all (a read-only file loses VM_SHARED),
  // so unlike the sealed memfd this does not stop a compromised data plane from writing.
  UniqueFd ShareFd() const;

  // zproxy_health_names: what slot `slot` is (names cut to ZPROXY_HEALTH_NAME_LEN - 1).
  bool SetSlotName(uint32_t slot, const std::string& cluster, const std::string& address);
  void ClearSlotName(uint32_t slot);
  void ClearSlotNames();

 private:
  Skeleton<::health> skel_;
};

// Bytes to mmap for the region (the value rounded up to pages).
size_t HealthMapMmapSize();

// Maps the array's single value; nullptr with errno on failure. Unmap with
// munmap(p, HealthMapMmapSize()).
zproxy_health_region* MapHealthRegion(int map_fd, bool writable);

}  // namespace zproxy::controlplane::bpf
