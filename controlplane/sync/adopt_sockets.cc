#include "controlplane/sync/adopt_sockets.h"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "common/net_address.h"
#include "common/unique_fd.h"

namespace zproxy::sync {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// The orphan's descriptor numbers that are sockets, ascending.
bool SocketFds(pid_t pid, std::vector<int>* fds, std::string* error) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    *error = Errno("opendir " + dir);
    return false;
  }
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[64];
    const std::string link = dir + "/" + e->d_name;
    ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    if (std::strncmp(target, "socket:", 7) == 0) fds->push_back(std::atoi(e->d_name));
  }
  closedir(d);
  std::sort(fds->begin(), fds->end());
  return true;
}

bool IsListeningTcp(int fd) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) != 0 || v != 1) return false;
  len = sizeof(v);
  return getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0 && v == SOCK_STREAM;
}

}  // namespace

bool AdoptListenSockets(pid_t pid, const zproxy::v1::Config& config, uint32_t workers,
                        std::vector<controlplane::ListenSocket>* out, std::string* error,
                        std::vector<int>* missing) {
  // Configured address (normalized) -> listener index.
  std::map<std::string, int> by_address;
  for (int i = 0; i < config.listeners_size(); i++) {
    NetAddress a;
    std::string why;
    if (!ParseNetAddress(config.listeners(i).address(), &a, &why)) {
      *error = "listener \"" + config.listeners(i).name() + "\": " + why;
      return false;
    }
    by_address[a.ToString()] = i;
  }
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) {
    *error = Errno("pidfd_open(" + std::to_string(pid) + ")");
    return false;
  }
  std::vector<int> remote;
  if (!SocketFds(pid, &remote, error)) return false;
  std::vector<std::vector<controlplane::ListenSocket>> found(config.listeners_size());
  for (int target : remote) {
    UniqueFd fd(static_cast<int>(syscall(SYS_pidfd_getfd, pidfd.get(), target, 0)));
    // Closed since the listing (the data plane's sync client redials on its own threads):
    // never one of its listen sockets, which stay open for its lifetime.
    if (!fd.valid() && errno == EBADF) continue;
    if (!fd.valid()) {
      *error =
          Errno("pidfd_getfd(pid " + std::to_string(pid) + ", fd " + std::to_string(target) + ")");
      return false;
    }
    if (!IsListeningTcp(fd.get())) continue;
    NetAddress bound;
    bound.len = sizeof(bound.storage);
    if (getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound.storage), &bound.len) != 0) {
      continue;
    }
    auto it = by_address.find(bound.ToString());
    if (it == by_address.end()) continue;  // /metrics, or a listener no longer configured
    auto& group = found[it->second];
    group.push_back(controlplane::ListenSocket{config.listeners(it->second).name(),
                                               static_cast<uint32_t>(group.size()),
                                               bound.ToString(), std::move(fd)});
  }
  for (int i = 0; i < config.listeners_size(); i++) {
    if (found[i].empty() && missing != nullptr) {
      missing->push_back(i);
      continue;
    }
    if (found[i].size() != workers) {
      *error = "listener \"" + config.listeners(i).name() + "\" (" + config.listeners(i).address() +
               "): the orphan holds " + std::to_string(found[i].size()) + " listen socket(s), " +
               std::to_string(workers) + " expected";
      return false;
    }
  }
  for (auto& group : found) {
    for (auto& s : group) out->push_back(std::move(s));
  }
  return true;
}

bool GatherListenSockets(pid_t pid, const zproxy::v1::Config& config, uint32_t workers,
                         std::vector<controlplane::ListenSocket>* out, std::string* error,
                         size_t* fresh) {
  std::vector<controlplane::ListenSocket> adopted;
  std::vector<int> missing;
  if (!AdoptListenSockets(pid, config, workers, &adopted, error, &missing)) return false;
  std::vector<controlplane::ListenSocket> created;
  if (!missing.empty()) {
    zproxy::v1::Config only_missing = config;
    only_missing.clear_listeners();
    for (int i : missing) *only_missing.add_listeners() = config.listeners(i);
    if (!controlplane::CreateListenSockets(only_missing, workers, &created, error)) return false;
  }
  if (fresh != nullptr) *fresh = missing.size();
  // Both lists are in listener order already: merge by the listener's index in config.
  auto index_of = [&config](const std::string& name) {
    for (int i = 0; i < config.listeners_size(); i++) {
      if (config.listeners(i).name() == name) return i;
    }
    return config.listeners_size();
  };
  size_t a = 0, c = 0;
  while (a < adopted.size() || c < created.size()) {
    const bool take_adopted =
        c == created.size() ||
        (a < adopted.size() && index_of(adopted[a].listener) < index_of(created[c].listener));
    out->push_back(std::move(take_adopted ? adopted[a++] : created[c++]));
  }
  return true;
}

}  // namespace zproxy::sync
