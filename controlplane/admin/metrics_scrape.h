// GET /metrics from the data plane (plain HTTP/1.0 over loopback TCP) and a few totals
// parsed from the Prometheus text. No gRPC here.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace zproxy::admin {

// Fetches http://`address`/metrics. Returns false with a reason in *error.
bool ScrapeMetrics(const std::string& address, int timeout_ms, std::string* body,
                   std::string* error);

// Sum of every sample of each metric family name (labels ignored); comments skipped.
std::map<std::string, double> SumByName(const std::string& prometheus_text);

}  // namespace zproxy::admin
