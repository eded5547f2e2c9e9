// The upstream health region as a pinned, mmapable BPF array (bpf/health.bpf.c): one
// entry whose value is exactly common/health_region.h's layout, so HealthRegion can map
// this fd instead of its memfd (a drop-in swap) and `bpftool map dump` names the fields.
#pragma once

#include <cstddef>
#include <string>

#include "bpf/health.skel.h"
#include "bpf/zproxy_structs.h"
#include "controlplane/bpf/options.h"
#include "controlplane/bpf/skeleton.h"

namespace zproxy::controlplane::bpf {

class HealthMap {
 public:
  // Loads the map (adopting a compatible pin: contents survive a zproxyd restart), fills
  // a fresh one with the header and all-healthy slots, pins it.
  bool Load(const BpfOptions& options, std::string* error);

  int fd() const { return bpf_map__fd(skel_->maps.zproxy_health); }
  bool reused() const { return !skel_.pins().reused().empty(); }

 private:
  Skeleton<::health> skel_;
};

// Bytes to mmap for the region (the value rounded up to pages).
size_t HealthMapMmapSize();

// Maps the array's single value; nullptr with errno on failure. Unmap with
// munmap(p, HealthMapMmapSize()).
zproxy_health_region* MapHealthRegion(int map_fd, bool writable);

}  // namespace zproxy::controlplane::bpf
