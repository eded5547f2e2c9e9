// Route and cluster header changes (RoutePolicy, docs/route-policy.md) carried out on a
// protocol-neutral message's fields: remove, set (replace), add (append), values with
// ${variables} expanded. No allocation: fields go into a caller's array, expanded values
// into its scratch memory.
#pragma once

#include <span>
#include <string_view>

#include "dataplane/http/message.h"
#include "dataplane/proxy/scratch_writer.h"
#include "dataplane/routing/route_policy.h"

namespace zproxy::proxy {

// The values of route_policy::Variable for one request ("" when unknown: a set or add
// whose value expands to nothing is skipped, as Envoy does).
struct Variables {
  std::string_view client_address;
  std::string_view request_id;
  std::string_view listener;
  std::string_view tls_version;
  std::string_view tls_sni;
};

// Each of `changes` (null entries skipped) in turn: fields it removes or sets are dropped,
// then its set and add fields are appended. `*fields` becomes a view into `out`. false
// when `out` or `scratch` is too small (the message is then unchanged).
bool ApplyHeaderChanges(std::span<const routing::HeaderChanges* const> changes,
                        const Variables& vars, std::span<http::Field>* fields,
                        std::span<http::Field> out, ScratchWriter* scratch);

// `value` with its ${variables} replaced, written into scratch (views of it returned).
std::string_view ExpandVariables(std::string_view value, const Variables& vars,
                                 ScratchWriter* scratch);

}  // namespace zproxy::proxy
