#include "controlplane/bpf/pins.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "common/log.h"
#include "common/unique_fd.h"

namespace zproxy::controlplane::bpf {

namespace {

std::string MapTypeName(uint32_t type) {
  const char* name = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(type));
  return name != nullptr ? name : "type " + std::to_string(type);
}

// A BTF type's layout as text, comparable across objects: struct and member names, bit
// offsets, integer sizes, array lengths (typedefs and qualifiers by what they stand for).
// Sizes alone miss a field renamed or reordered: the reused map would keep the old BTF,
// and bpftool would print the old names over the new meaning.
std::string Layout(const btf* b, uint32_t id, int depth = 0) {
  const btf_type* t = btf__type_by_id(b, id);
  if (t == nullptr || depth > 8) return "?";
  const char* raw = btf__name_by_offset(b, t->name_off);
  std::string name = raw != nullptr ? raw : "";
  switch (btf_kind(t)) {
    case BTF_KIND_INT:
    case BTF_KIND_ENUM:
      return name + "/" + std::to_string(t->size);
    case BTF_KIND_TYPEDEF:
    case BTF_KIND_VOLATILE:
    case BTF_KIND_CONST:
    case BTF_KIND_RESTRICT:
      return Layout(b, t->type, depth + 1);
    case BTF_KIND_ARRAY: {
      const struct btf_array* a = btf_array(t);
      return Layout(b, a->type, depth + 1) + "[" + std::to_string(a->nelems) + "]";
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
      std::string out = name + "{";
      const btf_member* m = btf_members(t);
      for (uint16_t i = 0; i < btf_vlen(t); i++, m++) {
        const char* field = btf__name_by_offset(b, m->name_off);
        out += std::string(field != nullptr ? field : "") + "@" +
               std::to_string(btf_member_bit_offset(t, i)) + ":" + Layout(b, m->type, depth + 1) +
               ";";
      }
      return out + "}";
    }
    default:
      return "kind" + std::to_string(btf_kind(t)) + " " + name;
  }
}

// "" when the key and value types read the same in both BTFs (or either side has none:
// SOCKHASHes never carry BTF, and then the sizes decide).
std::string BtfMismatch(const bpf_map_info& info, const bpf_map* map, const btf* ours) {
  if (ours == nullptr || info.btf_id == 0 || info.btf_value_type_id == 0 ||
      bpf_map__btf_value_type_id(map) == 0) {
    return "";
  }
  btf* theirs = btf__load_from_kernel_by_id(info.btf_id);
  if (theirs == nullptr) return "";  // cannot tell: the sizes matched
  std::string why;
  for (auto [what, was_id, now_id] :
       {std::tuple{"key layout ", info.btf_key_type_id, bpf_map__btf_key_type_id(map)},
        std::tuple{"value layout ", info.btf_value_type_id, bpf_map__btf_value_type_id(map)}}) {
    std::string was = Layout(theirs, was_id), now = Layout(ours, now_id);
    if (was != now) why += (why.empty() ? "" : "; ") + std::string(what) + was + ", now " + now;
  }
  btf__free(theirs);
  return why;
}

}  // namespace

std::string PinMismatch(int pinned_fd, const bpf_map* map, const btf* ours) {
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
  if (why.empty()) why = BtfMismatch(info, map, ours);
  return why;
}

bool Pins::Reuse(bpf_object* obj, std::string* error) {
  if (dir_.empty()) return true;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const std::string path = Path(bpf_map__name(map));
    UniqueFd fd(bpf_obj_get(path.c_str()));
    if (!fd.valid()) continue;
    if (std::string why = PinMismatch(fd.get(), map, bpf_object__btf(obj)); !why.empty()) {
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
