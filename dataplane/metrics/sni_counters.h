// Counters of tcp_proxy listeners routed by SNI (dataplane/tunnel/sni_inspect.cc):
//   zproxy_tcp_sni_routed_total{listener,cluster}            connections sent to a cluster
//   zproxy_tcp_client_hello_failures_total{listener,reason}  connections closed instead
// Their labels are listener and cluster names, which config changes add at run time, so
// they cannot be fixed arrays of WorkerStats. Each (listener, cluster) and each listener
// gets its counters the first time a snapshot names them, kept for the life of the process
// (Prometheus counters never go back, also across a config that drops a route and one that
// brings it back). Every worker adds to the same atomics: one relaxed add per connection,
// nothing next to its accept. Snapshots hold the pointers (stable: map nodes never move).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace zproxy::dataplane {

enum class HelloFailure : uint8_t {
  kTimeout,    // no complete ClientHello within client_hello_timeout_ms
  kMalformed,  // the first bytes are not a TLS ClientHello (or one over 16 KiB)
  kClosed,     // the client closed or reset before its ClientHello was complete
  kCount,
};

const char* HelloFailureName(HelloFailure f);

using HelloFailureCounters =
    std::array<std::atomic<uint64_t>, static_cast<size_t>(HelloFailure::kCount)>;

class SniCounters {
 public:
  // The process's counters (every snapshot and the metrics endpoint use these).
  static SniCounters& Process();

  std::atomic<uint64_t>* Routed(const std::string& listener, const std::string& cluster);
  HelloFailureCounters* Failures(const std::string& listener);

  struct Sample {
    std::string listener, label;  // label: the cluster, or the failure's reason
    uint64_t value;
  };
  // For the metrics endpoint: every counter so far, in name order.
  void Collect(std::vector<Sample>* routed, std::vector<Sample>* failures) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::atomic<uint64_t>> routed_;
  std::map<std::string, HelloFailureCounters> failures_;
};

}  // namespace zproxy::dataplane
