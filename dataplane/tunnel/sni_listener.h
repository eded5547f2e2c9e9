// What a tcp_proxy listener with sni_routes keeps in the config snapshot: its router, its
// ClientHello timeout and the counters each choice and each failure adds to. Built once per
// snapshot (BuildSnapshot), read by every worker (sni_inspect.cc).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/metrics/sni_counters.h"
#include "dataplane/tunnel/sni_router.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::dataplane {

struct SniListener {
  std::unique_ptr<const tunnel::SniRouter> router;
  uint32_t hello_timeout_ms = 10000;
  // One per sni_routes entry, then the default's: zproxy_tcp_sni_routed_total{listener,
  // cluster} of the entry's cluster (entries naming one cluster share it).
  std::vector<std::atomic<uint64_t>*> routed;
  HelloFailureCounters* failures = nullptr;

  std::atomic<uint64_t>* RoutedCounter(int entry) const {
    return entry == tunnel::SniRouter::kDefault ? routed.back() : routed[entry];
  }
};

// nullptr when the listener has no sni_routes (then *error stays empty) or when they are
// invalid (*error names the field under `path`, e.g. "listeners[2]").
std::shared_ptr<const SniListener> BuildSniListener(const zproxy::v1::Config& config,
                                                    const zproxy::v1::Listener& listener,
                                                    const std::string& path, std::string* error);

}  // namespace zproxy::dataplane
