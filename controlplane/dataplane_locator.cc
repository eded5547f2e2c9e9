#include "controlplane/dataplane_locator.h"

#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace zproxy::controlplane {

bool FindDataplaneBinary(const std::string& override_path, std::string* path, std::string* error) {
  if (!override_path.empty()) {
    if (access(override_path.c_str(), X_OK) != 0) {
      *error = "--dataplane " + override_path + ": " + std::strerror(errno);
      return false;
    }
    *path = override_path;
    return true;
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) {
    *error = std::string("cannot read /proc/self/exe: ") + std::strerror(errno) +
             "; pass --dataplane PATH";
    return false;
  }
  std::string dir(self, static_cast<size_t>(n));
  dir.resize(dir.rfind('/'));
  const std::vector<std::string> candidates = {
      dir + "/zproxy-dataplane",               // installed side by side
      dir + "/../dataplane/zproxy-dataplane",  // bazel-bin layout
  };
  std::string tried;
  for (const auto& c : candidates) {
    if (access(c.c_str(), X_OK) == 0) {
      *path = c;
      return true;
    }
    tried += (tried.empty() ? "" : ", ") + c;
  }
  *error = "data plane binary not found (tried " + tried +
           "); build //dataplane:zproxy-dataplane or pass --dataplane PATH";
  return false;
}

}  // namespace zproxy::controlplane
