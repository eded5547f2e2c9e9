// Where the data plane serves its own /metrics now that zproxyd owns metrics_address (its
// front adds /ready and /live and serves many clients at once, so one slow client cannot
// hold the port; controlplane/probes). The data plane binds a private loopback address and
// zproxyd forwards /metrics to it.
//
// The address is a pure function of metrics_address: a zproxyd started after a crash
// computes the same one, so an adopted data plane keeps its config unchanged (no handover)
// and its /metrics stays reachable. Same port, another loopback address (127.a.b.c, from
// a hash of metrics_address): the port is one we already own on the public side, and
// addresses in 127.0.0.0/8 other than 127.0.0.1 are rarely used by anything else.
#pragma once

#include <string>

namespace zproxy::state {

// "" for "" (metrics off). For "host:port" returns "127.a.b.c:port", never 127.0.0.1 and
// never a .0 or .255 last byte.
std::string DataplaneMetricsAddress(const std::string& metrics_address);

}  // namespace zproxy::state
