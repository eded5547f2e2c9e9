#include "controlplane/config/config_error.h"

namespace zproxy::config {

std::string ConfigError::ToString() const {
  std::string out;
  if (!source.empty()) {
    out += source;
    if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
    out += ": ";
  }
  if (!field_path.empty()) out += field_path + ": ";
  out += message;
  return out;
}

}  // namespace zproxy::config
