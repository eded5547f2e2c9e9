// zproxyctl's health views: the GetHealth table (`zproxyctl health`), the per-cluster
// summary of `clusters list`, and their JSON. No gRPC calls here, only the messages.
#pragma once

#include <cstdint>
#include <string>

#include "zproxy/v1/admin.pb.h"

namespace zproxy::ctl {

// A short age: "850ms", "42s", "3m05s", "2h10m", "4d03h"; "-" for a negative age.
std::string FormatAge(int64_t ms);

// CLUSTER ENDPOINT STATE SINCE LAST-CHECK REASON, ages relative to the server's clock
// (r.unix_time_ms()), so a skewed client clock does not matter.
std::string RenderHealthTable(const v1::HealthResponse& r);

// "2/3 healthy", "2/3 healthy, 1 draining".
std::string HealthSummaryText(const v1::ClusterHealthSummary& s);

// `object_json` (a JSON object, as protobuf prints one) with `"key": value_json` appended
// as its last member. Used to add fields to an existing -o json output without changing
// the ones it has.
std::string AddJsonMember(const std::string& object_json, const std::string& key,
                          const std::string& value_json);

}  // namespace zproxy::ctl
