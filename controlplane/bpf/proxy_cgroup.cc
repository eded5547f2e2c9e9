#include "controlplane/bpf/proxy_cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>

#include "controlplane/bpf/local_hops.h"
#include "controlplane/bpf/paths.h"
#include "controlplane/bpf/sidecar.h"

namespace zproxy::controlplane::bpf {

namespace {

// Writing a pid to cgroup.procs moves the whole process (every thread).
bool MoveSelf(const std::string& dir, std::string* error) {
  std::ofstream procs(dir + "/cgroup.procs");
  procs << getpid() << std::flush;
  if (procs) return true;
  *error = "write " + dir + "/cgroup.procs: " + strerror(errno);
  return false;
}

// Children left by SIGKILLed zproxyds: once their processes are gone they are empty, and
// rmdir takes them; one still in use (another zproxyd, an orphaned data plane) says EBUSY.
void RemoveLeftovers(const std::string& parent, const std::string& keep) {
  DIR* dir = opendir(parent.c_str());
  if (dir == nullptr) return;
  while (dirent* e = readdir(dir)) {
    std::string path = parent + "/" + e->d_name;
    if (std::string(e->d_name).rfind("zproxyd-sidecar-", 0) == 0 && path != keep) {
      rmdir(path.c_str());
    }
  }
  closedir(dir);
}

}  // namespace

ProxyCgroup::Outcome ProxyCgroup::Enter(const std::string& app_cgroup, const std::string& instance,
                                        std::string* note) {
  std::string mount = Cgroup2MountOf(app_cgroup, note);
  if (mount.empty()) return Outcome::kNotMoved;
  std::string own = RealPath(mount + OwnCgroup());
  if (own.empty()) {
    *note = "cannot resolve zproxyd's cgroup " + mount + OwnCgroup();
    return Outcome::kNotMoved;
  }
  // Inside the application's cgroup a child would be too: interception refuses that case
  // and names it; moving would not help.
  if (PathUnder(own, RealPath(app_cgroup))) {
    *note = "zproxyd runs inside sidecar.cgroup";
    return Outcome::kNotMoved;
  }
  if (own != mount && ForeignProcesses(own) == 0) return Outcome::kAlreadyOwn;
  // A name stable across restarts of one zproxyd (same bpffs path), distinct between
  // zproxyds started side by side.
  char suffix[17];
  snprintf(suffix, sizeof(suffix), "%08zx", std::hash<std::string>{}(instance)&0xffffffffu);
  std::string child = own + "/zproxyd-sidecar-" + suffix;
  RemoveLeftovers(own, child);
  // Twice: a zproxyd starting beside us may take our fresh, still empty child for a
  // leftover and remove it between mkdir and the move.
  bool moved = false;
  for (int attempt = 0; attempt < 2 && !moved; attempt++) {
    if (mkdir(child.c_str(), 0755) != 0 && errno != EEXIST) {
      *note = "mkdir " + child + ": " + strerror(errno);
      return Outcome::kNotMoved;
    }
    moved = MoveSelf(child, note);
  }
  if (!moved) {
    rmdir(child.c_str());
    return Outcome::kNotMoved;
  }
  path_ = child;
  previous_ = own;
  return Outcome::kMoved;
}

void ProxyCgroup::Leave() {
  if (path_.empty()) return;
  std::string error;
  // Back where it came from, so the child empties and can go; an adopted data plane that
  // outlives zproxyd keeps it busy (EBUSY), and the next zproxyd joins it again.
  if (MoveSelf(previous_, &error)) rmdir(path_.c_str());
  path_.clear();
}

}  // namespace zproxy::controlplane::bpf
