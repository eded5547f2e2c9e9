#include "dataplane/metrics/sni_counters.h"

namespace zproxy::dataplane {

const char* HelloFailureName(HelloFailure f) {
  switch (f) {
    case HelloFailure::kTimeout:
      return "timeout";
    case HelloFailure::kMalformed:
      return "malformed";
    case HelloFailure::kClosed:
      return "closed";
    case HelloFailure::kCount:
      break;
  }
  return "unknown";
}

SniCounters& SniCounters::Process() {
  static SniCounters* counters = new SniCounters();  // never destroyed: workers may outlive
  return *counters;                                  // static destructors at exit
}

std::atomic<uint64_t>* SniCounters::Routed(const std::string& listener,
                                           const std::string& cluster) {
  std::lock_guard<std::mutex> lock(mu_);
  return &routed_.try_emplace({listener, cluster}).first->second;
}

HelloFailureCounters* SniCounters::Failures(const std::string& listener) {
  std::lock_guard<std::mutex> lock(mu_);
  return &failures_.try_emplace(listener).first->second;
}

void SniCounters::Collect(std::vector<Sample>* routed, std::vector<Sample>* failures) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, v] : routed_) {
    routed->push_back({key.first, key.second, v.load(std::memory_order_relaxed)});
  }
  for (const auto& [listener, counts] : failures_) {
    for (size_t i = 0; i < counts.size(); i++) {
      failures->push_back({listener, HelloFailureName(static_cast<HelloFailure>(i)),
                           counts[i].load(std::memory_order_relaxed)});
    }
  }
}

}  // namespace zproxy::dataplane
