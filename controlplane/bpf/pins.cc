#include "controlplane/bpf/pins.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/unique_fd.h"

namespace zproxy::controlplane::bpf {

bool PinCompatible(int pinned_fd, const bpf_map* map) {
  bpf_map_info info;
  std::memset(&info, 0, sizeof(info));
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(pinned_fd, &info, &len) != 0) return false;  // not a map
  return info.type == static_cast<uint32_t>(bpf_map__type(map)) &&
         info.key_size == bpf_map__key_size(map) && info.value_size == bpf_map__value_size(map) &&
         info.max_entries == bpf_map__max_entries(map) && info.map_flags == bpf_map__map_flags(map);
}

bool Pins::Reuse(bpf_object* obj, std::string* error) {
  if (dir_.empty()) return true;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const std::string path = Path(bpf_map__name(map));
    UniqueFd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid() || !PinCompatible(fd.get(), map)) continue;  // Commit replaces it
    // reuse_fd dups the fd: ours closes at scope end.
    if (int err = bpf_map__reuse_fd(map, fd.get()); err != 0) {
      *error = "reuse pinned map " + path + ": " + std::strerror(-err);
      return false;
    }
    reused_.push_back(bpf_map__name(map));
    pinned_.push_back(path);
  }
  return true;
}

bool Pins::Commit(bpf_object* obj, std::string* error) {
  if (dir_.empty()) return true;
  auto pin = [&](int fd, const char* name) {
    const std::string path = Path(name);
    if (unlink(path.c_str()) != 0 && errno != ENOENT) {
      *error = "replace pin " + path + ": " + std::strerror(errno);
      return false;
    }
    if (bpf_obj_pin(fd, path.c_str()) != 0) {
      *error = "pin " + path + ": " + std::strerror(errno);
      return false;
    }
    pinned_.push_back(path);
    return true;
  };
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    if (std::find(reused_.begin(), reused_.end(), name) != reused_.end()) continue;
    if (!pin(bpf_map__fd(map), name)) return false;
  }
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    if (!pin(bpf_program__fd(prog), bpf_program__name(prog))) return false;
  }
  return true;
}

void Pins::Unpin() {
  for (const std::string& path : pinned_) unlink(path.c_str());
  if (!pinned_.empty()) rmdir(dir_.c_str());  // only if nobody else pins there
  pinned_.clear();
  reused_.clear();
}

}  // namespace zproxy::controlplane::bpf
