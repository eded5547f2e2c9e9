#include "controlplane/bpf/paths.h"

#include <limits.h>
#include <stdlib.h>

namespace zproxy::controlplane::bpf {

std::string RealPath(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) != nullptr ? std::string(buf) : std::string();
}

bool PathUnder(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir == "/" || path[dir.size()] == '/'));
}

}  // namespace zproxy::controlplane::bpf
