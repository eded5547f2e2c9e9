// The listen sockets zproxyd owns for the data plane's lifetime: per listener, one
// SO_REUSEPORT member per worker. zproxyd keeps them open across data plane restarts, so
// the kernel keeps queueing connections and none is refused while the data plane is down.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::controlplane {

struct ListenSocket {
  std::string listener;  // Listener.name
  uint32_t worker = 0;
  std::string address;  // as bound (a configured port 0 shows the real port)
  UniqueFd fd;
};

// Listen backlog: net.core.somaxconn if readable and larger, else 4096 (the kernel clamps
// to somaxconn anyway).
int ListenBacklog();

// Creates the sockets (nonblocking, close-on-exec, SO_REUSEADDR + SO_REUSEPORT,
// IPV6_V6ONLY for IPv6) in listener order, then worker order. Fails with a message that
// names the listener and address, e.g. when the address is already in use.
// `probe` false skips the plain probe bind: used to join the SO_REUSEPORT groups of an
// orphaned data plane that is being taken over (controlplane/sync/orphan.h).
bool CreateListenSockets(const zproxy::v1::Config& config, uint32_t workers,
                         std::vector<ListenSocket>* out, std::string* error, bool probe = true);

}  // namespace zproxy::controlplane
