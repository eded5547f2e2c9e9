// Generic YAML -> protobuf mapping driven by the message descriptors, so the config file
// and the Admin API share one schema and a new proto field needs no loader change.
//
// Rules: a YAML map fills a message (keys are proto field names, snake_case); a YAML list
// fills a repeated field; scalars are checked against the field type (unsigned integers,
// booleans true/false/yes/no/on/off, enums by value name case-insensitively, with or
// without the enum type's prefix). Unknown keys, duplicate keys and type mismatches are
// errors carrying the field path and the YAML line:column. Mapping continues after an
// error so one run reports every problem.
#pragma once

#include <google/protobuf/message.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "controlplane/config/config_error.h"

namespace zproxy::config {

struct SourceLocation {
  int line = 0;    // 1-based
  int column = 0;  // 1-based
};

// Field path ("listeners[0].address") -> where its value was written. Lets errors found
// later, on the proto (validation), still point at a line in the file.
using SourceMap = std::unordered_map<std::string, SourceLocation>;

struct YamlMappingOptions {
  // Message full name -> the field a plain YAML scalar fills when that message is expected
  // ("zproxy.v1.Endpoint" -> "address", so `endpoints: [127.0.0.1:3000]` works).
  std::map<std::string, std::string> scalar_shorthand;
};

// Fills *out (which should be empty) from `node`. Returns every error found; empty means
// success. `source` labels error locations (usually the file name). `source_map` may be
// null. Never throws.
ConfigErrors YamlToMessage(const YAML::Node& node, const YamlMappingOptions& options,
                           std::string_view source, google::protobuf::Message* out,
                           SourceMap* source_map);

}  // namespace zproxy::config
