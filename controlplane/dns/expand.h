// The data plane's view of host-name endpoints: each "host:port" endpoint becomes one
// endpoint per address the name resolves to now (same port, weight and draining, with
// `resolved_from` naming it); a name without addresses contributes none. Addresses that
// a cluster already lists are not repeated. The `dns` blocks are dropped: the data plane
// has no use for them, and a changed refresh bound must not look like a changed cluster
// to it. Pure.
#pragma once

#include "controlplane/dns/name_table.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::dns {

void ExpandNamedEndpoints(const NameTable& names, zproxy::v1::Config* config);

// "1.2.3.4:80", "[::1]:80".
std::string JoinHostPort(const std::string& ip, uint16_t port);

}  // namespace zproxy::dns
