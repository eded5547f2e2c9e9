#include "controlplane/bpf/pins.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/log.h"
#include "common/unique_fd.h"

namespace zproxy::controlplane::bpf {

namespace {

std::string MapTypeName(uint32_t type) {
  const char* name = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type));
  return name != nullptr ? name : "type " + std::to_string(type);
}

}  // namespace

std::string PinMismatch(int pinned_fd, const bpf_map* map) {
  bpf_map_info info;
  std::memset(&info, 0, sizeof(info));
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(pinned_fd, &info, &len) != 0) return "not a map";
  std::string why;
  auto differs = [&why](const char* what, const std::string& was, const std::string& now) {
    if (was != now) why += (why.empty() ? "" : "; ") + std::string(what) + was + ", now " + now;
  };
  auto num = [](uint64_t v) { return std::to_string(v); };
  differs("type ", MapTypeName(info.type), MapTypeName(bpf_map__type(map)));
  differs("key bytes ", num(info.key_size), num(bpf_map__key_size(map)));
  differs("value bytes ", num(info.value_size), num(bpf_map__value_size(map)));
  differs("max_entries ", num(info.max_entries), num(bpf_map__max_entries(map)));
  differs("flags ", num(info.map_flags), num(bpf_map__map_flags(map)));
  return why;
}

bool Pins::Reuse(bpf_object* obj, std::string* error) {
  if (dir_.empty()) return true;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const std::string path = Path(bpf_map__name(map));
    UniqueFd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid()) continue;
    if (std::string why = PinMismatch(fd.get(), map); !why.empty()) {
      replaced_.push_back(std::string(bpf_map__name(map)) + " (" + why + ")");
      continue;  // Commit replaces it
    }
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
  if (!replaced_.empty()) {
    // An older zproxy's layout (or a stranger's map under our name): its contents are lost,
    // and whoever still holds it (an old data plane) keeps it until it exits.
    std::string list;
    for (const std::string& r : replaced_) list += (list.empty() ? "" : ", ") + r;
    ZLOG_INFO("bpf pins in %s: replaced incompatible %s", dir_.c_str(), list.c_str());
  }
  return true;
}

void Pins::Unpin() {
  for (const std::string& path : pinned_) unlink(path.c_str());
  if (!pinned_.empty()) rmdir(dir_.c_str());  // only if nobody else pins there
  pinned_.clear();
  reused_.clear();
  replaced_.clear();
}

}  // namespace zproxy::controlplane::bpf
