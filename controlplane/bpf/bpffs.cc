#include "controlplane/bpf/bpffs.h"

#include <errno.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <cstring>

#include "controlplane/bpf/paths.h"

namespace zproxy::controlplane::bpf {
namespace {

constexpr char kDefaultMount[] = "/sys/fs/bpf";

bool MkdirP(const std::string& dir, mode_t mode, std::string* error) {
  for (size_t pos = 1; pos <= dir.size(); pos++) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), mode) != 0 && errno != EEXIST) {
      *error = "mkdir " + part + ": " + std::strerror(errno);
      return false;
    }
  }
  return true;
}

}  // namespace

bool IsOnBpffs(const std::string& path) {
  struct statfs st;
  return statfs(path.c_str(), &st) == 0 &&
         st.f_type == static_cast<decltype(st.f_type)>(BPF_FS_MAGIC);
}

bool EnsureBpffsDir(const std::string& dir, std::string* error) {
  if (dir.empty() || dir[0] != '/') {
    *error = "bpffs path must be absolute, got \"" + dir + "\"";
    return false;
  }
  std::string mount_point = PathUnder(dir, kDefaultMount) ? kDefaultMount : dir;
  if (!MkdirP(mount_point, 0700, error)) return false;
  if (!IsOnBpffs(mount_point)) {
    if (mount("bpf", mount_point.c_str(), "bpf", 0, "mode=0700") != 0) {
      *error = "mount -t bpf bpf " + mount_point + ": " + std::strerror(errno);
      return false;
    }
  }
  if (!MkdirP(dir, 0700, error)) return false;
  if (!IsOnBpffs(dir)) {
    *error = dir + " is not on a bpf filesystem";
    return false;
  }
  return true;
}

}  // namespace zproxy::controlplane::bpf
