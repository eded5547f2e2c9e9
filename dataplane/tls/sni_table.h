// Which certificates serve a server name (SNI): exact names and one-label wildcards
// ("*.example.com" covers "a.example.com", not "example.com" nor "a.b.example.com"),
// case-insensitive, exact names before wildcards. Pure data, no TLS library: unit tested
// on its own (sni_table_test.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace zproxy::tls {

class SniTable {
 public:
  // Adds `name` (from a certificate's SAN/CN) for certificate `index`. Names are
  // lower-cased; a wildcard must be a leading "*." (others are ignored, returns false).
  bool Add(std::string_view name, uint32_t index);

  // The certificates for `server_name` in the order they were added, or nullptr.
  const std::vector<uint32_t>* Find(std::string_view server_name) const;

 private:
  std::unordered_map<std::string, std::vector<uint32_t>> exact_;
  std::unordered_map<std::string, std::vector<uint32_t>> wildcard_;  // key: "example.com"
};

}  // namespace zproxy::tls
