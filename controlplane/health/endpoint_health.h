// What the active checker knows about one endpoint right now (HealthChecker::States(),
// the Admin API's GetHealth). A plain value: no locks, no gRPC, no OpenSSL.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace zproxy::health {

struct EndpointHealth {
  using Time = std::chrono::system_clock::time_point;

  std::string cluster;
  std::string address;
  uint32_t slot = 0;
  bool healthy = true;      // the verdict written to the health region
  std::string last_result;  // reason of the last finished probe ("" before the first)
  bool last_ok = false;     // outcome of the last finished probe
  uint32_t successes = 0;   // consecutive
  uint32_t failures = 0;    // consecutive
  Time last_check{};        // epoch (zero) = no probe finished yet
  Time last_transition{};   // epoch = no transition since checking began
  Time checking_since{};    // when the checker took the endpoint on
};

}  // namespace zproxy::health
