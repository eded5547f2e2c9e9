// Loopback socket helpers for the BPF tests.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <utility>

#include "common/unique_fd.h"

namespace zproxy::controlplane::bpf::testing {

// A listening IPv4 socket on 127.0.0.1:port (0 = any) with SO_REUSEPORT.
UniqueFd ReuseportListener(uint16_t port);
uint16_t LocalPort(int fd);
// A connected loopback pair (client, accepted server side); family AF_INET or AF_INET6.
std::pair<UniqueFd, UniqueFd> TcpPair(int family = AF_INET);
// A fresh bpffs directory for one test, removed by the caller with RemoveDir.
std::string TestPinDir(const std::string& name);
void RemoveDir(const std::string& dir);

}  // namespace zproxy::controlplane::bpf::testing
