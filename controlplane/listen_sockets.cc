#include "controlplane/listen_sockets.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/net_address.h"

namespace zproxy::controlplane {
namespace {

bool SetOpt(int fd, int level, int name, int value, const char* what, std::string* error) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) == 0) return true;
  *error = std::string("setsockopt(") + what + "): " + std::strerror(errno);
  return false;
}

std::string BindError(int err, const std::string& listener, const std::string& address) {
  std::string msg =
      "listener \"" + listener + "\": cannot bind " + address + ": " + std::strerror(err);
  if (err == EADDRINUSE)
    msg += " (another process is listening there; is zproxyd already running?)";
  if (err == EACCES) msg += " (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
  if (err == EADDRNOTAVAIL) msg += " (no local interface has this address)";
  return msg;
}

// SO_REUSEPORT lets any same-user socket join the group, so a second zproxyd would
// silently share the port. Binding one plain socket first catches that case.
bool ProbeAddressFree(const NetAddress& addr, const std::string& listener, std::string* error) {
  UniqueFd probe(socket(addr.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe.valid()) {
    *error = "listener \"" + listener + "\": socket(): " + std::strerror(errno);
    return false;
  }
  int one = 1;
  setsockopt(probe.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (addr.family() == AF_INET6)
    setsockopt(probe.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  if (bind(probe.get(), addr.sa(), addr.len) != 0) {
    *error = BindError(errno, listener, addr.ToString());
    return false;
  }
  return true;
}

}  // namespace

int ListenBacklog() {
  int somaxconn = 0;
  std::ifstream in("/proc/sys/net/core/somaxconn");
  if (in >> somaxconn && somaxconn > 4096) return somaxconn;
  return 4096;
}

bool CreateListenSockets(const zproxy::v1::Config& config, uint32_t workers,
                         std::vector<ListenSocket>* out, std::string* error, bool probe) {
  const int backlog = ListenBacklog();
  for (const auto& l : config.listeners()) {
    NetAddress addr;
    std::string why;
    if (!ParseNetAddress(l.address(), &addr, &why)) {
      *error = "listener \"" + l.name() + "\": invalid address \"" + l.address() + "\": " + why;
      return false;
    }
    if (probe && addr.port() != 0 && !ProbeAddressFree(addr, l.name(), error)) return false;
    for (uint32_t w = 0; w < workers; ++w) {
      UniqueFd fd(socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!fd.valid()) {
        *error = "listener \"" + l.name() + "\": socket(): " + std::strerror(errno);
        return false;
      }
      if (!SetOpt(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR", error) ||
          !SetOpt(fd.get(), SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT", error) ||
          (addr.family() == AF_INET6 &&
           !SetOpt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY", error))) {
        *error = "listener \"" + l.name() + "\": " + *error;
        return false;
      }
      if (bind(fd.get(), addr.sa(), addr.len) != 0) {
        *error = BindError(errno, l.name(), addr.ToString());
        return false;
      }
      if (w == 0 && addr.port() == 0) {
        // Port 0: the kernel picked one; the other group members must join that port.
        addr.len = sizeof(addr.storage);
        getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr.storage), &addr.len);
      }
      if (listen(fd.get(), backlog) != 0) {
        *error = "listener \"" + l.name() + "\": listen on " + addr.ToString() + ": " +
                 std::strerror(errno);
        return false;
      }
      out->push_back(ListenSocket{l.name(), w, addr.ToString(), std::move(fd)});
    }
  }
  return true;
}

}  // namespace zproxy::controlplane
