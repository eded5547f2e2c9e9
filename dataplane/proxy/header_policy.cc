#include "dataplane/proxy/header_policy.h"

#include <cstring>

#include "dataplane/http1/http1.h"
#include "dataplane/proxy/scratch_writer.h"

namespace zproxy::proxy {

using http1::EqualsIgnoreCase;

namespace {
// One X-Forwarded-For value: every value the client sent, in order, then its address
// (RFC 9110 5.3: several fields of one name are one list).
std::string_view MergedForwardedFor(std::span<const http::Field> fields, size_t first,
                                    std::string_view client_ip, std::span<char> scratch, bool* ok) {
  ScratchWriter w(scratch);
  for (size_t j = first; j < fields.size(); j++) {
    if (!EqualsIgnoreCase(fields[j].name, "x-forwarded-for") || fields[j].value.empty()) continue;
    if (w.len != 0) w.Put(", ");
    w.Put(fields[j].value);
  }
  if (w.len != 0) w.Put(", ");
  w.Put(client_ip);
  *ok = w.ok;
  return std::string_view(scratch.data(), w.len);
}
}  // namespace

bool ApplyRequestPolicy(const RequestPolicy& policy, std::span<http::Field> out_fields,
                        std::span<char> scratch, http::RequestHead* req) {
  std::string_view client_authority = req->authority;
  if (!policy.host_rewrite.empty()) {
    req->authority = policy.host_rewrite;
  } else if (req->authority.empty()) {
    req->authority = policy.fallback_host;
  }
  if (!policy.add_forwarded) return true;  // fields unchanged
  size_t n = 0;
  bool xff_written = false;
  for (size_t i = 0; i < req->fields.size(); i++) {
    const http::Field& f = req->fields[i];
    if (EqualsIgnoreCase(f.name, "x-forwarded-proto") ||
        EqualsIgnoreCase(f.name, "x-forwarded-host")) {
      continue;
    }
    if (EqualsIgnoreCase(f.name, "x-forwarded-for") && !policy.client_ip.empty()) {
      if (xff_written) continue;  // merged into the first one
      xff_written = true;
      bool ok = true;
      std::string_view merged = MergedForwardedFor(req->fields, i, policy.client_ip, scratch, &ok);
      if (!ok) return false;
      out_fields[n++] = http::Field{"X-Forwarded-For", merged};
      continue;
    }
    out_fields[n++] = f;
  }
  if (!xff_written && !policy.client_ip.empty()) {
    out_fields[n++] = http::Field{"X-Forwarded-For", policy.client_ip};
  }
  out_fields[n++] = http::Field{"X-Forwarded-Proto", req->scheme};
  if (!client_authority.empty()) {
    out_fields[n++] = http::Field{"X-Forwarded-Host", client_authority};
  }
  req->fields = out_fields.subspan(0, n);
  return true;
}

}  // namespace zproxy::proxy
