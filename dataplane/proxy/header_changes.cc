#include "dataplane/proxy/header_changes.h"

namespace zproxy::proxy {
namespace {

std::string_view VariableValue(route_policy::Variable v, const Variables& vars) {
  switch (v) {
    case route_policy::Variable::kClientAddress:
      return vars.client_address;
    case route_policy::Variable::kRequestId:
      return vars.request_id;
    case route_policy::Variable::kListener:
      return vars.listener;
    case route_policy::Variable::kTlsVersion:
      return vars.tls_version;
    case route_policy::Variable::kTlsSni:
      return vars.tls_sni;
  }
  return {};
}

}  // namespace

std::string_view ExpandVariables(std::string_view value, const Variables& vars,
                                 ScratchWriter* scratch) {
  size_t mark = scratch->len;
  while (!value.empty()) {
    size_t start = value.find("${");
    size_t end = start == std::string_view::npos ? start : value.find('}', start);
    if (end == std::string_view::npos) {
      scratch->Put(value);
      break;
    }
    scratch->Put(value.substr(0, start));
    route_policy::Variable v;
    std::string_view name = value.substr(start + 2, end - start - 2);
    if (route_policy::VariableByName(name, &v)) {
      scratch->Put(VariableValue(v, vars));
    } else {
      scratch->Put(value.substr(start, end - start + 1));  // validation refuses these
    }
    value.remove_prefix(end + 1);
  }
  return scratch->Since(mark);
}

bool ApplyHeaderChanges(std::span<const routing::HeaderChanges* const> changes,
                        const Variables& vars, std::span<http::Field>* fields,
                        std::span<http::Field> out, ScratchWriter* scratch) {
  std::span<http::Field> in = *fields;
  size_t n = 0;
  bool first = true;
  for (const routing::HeaderChanges* c : changes) {
    if (c == nullptr || c->empty()) continue;
    // Drop what this layer removes or replaces: from the message the first time, in place
    // in `out` afterwards (a later layer also sees what an earlier one added).
    std::span<http::Field> src = first ? in : out.subspan(0, n);
    size_t kept = 0;
    for (const http::Field& f : src) {
      if (c->Drops(f.name)) continue;
      if (kept >= out.size()) return false;
      out[kept++] = f;
    }
    n = kept;
    first = false;
    for (const auto* ops : {&c->set, &c->add}) {
      for (const routing::HeaderOp& op : *ops) {
        std::string_view value = op.value;
        if (op.has_variables) {
          value = ExpandVariables(op.value, vars, scratch);
          if (value.empty()) continue;
        }
        if (n >= out.size()) return false;
        out[n++] = http::Field{op.name, value};
      }
    }
  }
  if (first) return true;  // nothing to do
  if (!scratch->ok) return false;
  *fields = out.subspan(0, n);
  return true;
}

}  // namespace zproxy::proxy
