// One configuration problem, located by field path (and, when it came from a file, by
// line and column) so an operator can fix it without guessing.
#pragma once

#include <string>
#include <vector>

namespace zproxy::config {

struct ConfigError {
  std::string field_path;  // "listeners[0].routes[1].match"; empty for whole-document errors
  std::string message;     // "unknown field \"prefx\""
  std::string source;      // file name or other source label; empty if not from a file
  int line = 0;            // 1-based; 0 = unknown
  int column = 0;          // 1-based; 0 = unknown

  // "config.yaml:7:5: listeners[0].routes[1].match: unknown field \"prefx\"", leaving out
  // the parts that are unknown.
  std::string ToString() const;
};

using ConfigErrors = std::vector<ConfigError>;

}  // namespace zproxy::config
