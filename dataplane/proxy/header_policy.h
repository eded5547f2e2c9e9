// The proxy's header policy on protocol-neutral requests (no I/O, no wire format, so it is
// the same for every codec and unit-tested on its own):
//  - X-Forwarded-For gets the client address appended (several such fields are merged
//    into one list), X-Forwarded-Proto and X-Forwarded-Host are set by the proxy
//    (client-sent values are replaced);
//  - the authority sent upstream is the route's host rewrite, else the client's, else
//    the cluster's fallback (an HTTP/1.0 client may send no Host).
// Connection-specific fields never get here: the codec that received them consumed them.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "dataplane/http/message.h"

namespace zproxy::proxy {

struct RequestPolicy {
  std::string_view host_rewrite;   // "" = keep the client's authority
  std::string_view fallback_host;  // used when the client sent no authority
  std::string_view client_ip;      // "" = unknown: X-Forwarded-For is left as received
  bool add_forwarded = true;
};

// Fields added beyond the client's: X-Forwarded-For, -Proto, -Host.
inline constexpr size_t kPolicyExtraFields = 3;

// Rewrites `req` in place into the request the upstream gets. Its fields are rewritten
// into `out_fields` (room for req->fields.size() + kPolicyExtraFields); a merged
// X-Forwarded-For value is written into `scratch`. Views keep pointing at the original
// strings. Returns false if the scratch space was too small.
bool ApplyRequestPolicy(const RequestPolicy& policy, std::span<http::Field> out_fields,
                        std::span<char> scratch, http::RequestHead* req);

}  // namespace zproxy::proxy
