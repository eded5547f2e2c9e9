#include "dataplane/tls/sni_table.h"

#include <algorithm>

namespace zproxy::tls {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

void AddUnique(std::vector<uint32_t>* v, uint32_t index) {
  if (std::find(v->begin(), v->end(), index) == v->end()) v->push_back(index);
}

}  // namespace

bool SniTable::Add(std::string_view name, uint32_t index) {
  if (name.empty()) return false;
  if (name.size() > 2 && name.substr(0, 2) == "*.") {
    std::string_view rest = name.substr(2);
    if (rest.find('*') != std::string_view::npos) return false;
    AddUnique(&wildcard_[Lower(rest)], index);
    return true;
  }
  if (name.find('*') != std::string_view::npos) return false;
  AddUnique(&exact_[Lower(name)], index);
  return true;
}

const std::vector<uint32_t>* SniTable::Find(std::string_view server_name) const {
  if (server_name.empty()) return nullptr;
  // SNI carries no trailing dot by RFC 6066, but tolerate one.
  if (server_name.back() == '.') server_name.remove_suffix(1);
  // Bounded on-stack lowering would avoid the string; handshakes are not the per-request
  // hot path, and names are short (small-string optimization).
  std::string name = Lower(server_name);
  if (auto it = exact_.find(name); it != exact_.end()) return &it->second;
  size_t dot = name.find('.');
  if (dot == std::string::npos || dot == 0) return nullptr;
  if (auto it = wildcard_.find(name.substr(dot + 1)); it != wildcard_.end()) return &it->second;
  return nullptr;
}

}  // namespace zproxy::tls
