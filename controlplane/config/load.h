// Config file loading: YAML text -> zproxy.v1.Config, with defaults applied and validated.
// The single entry point zproxyd uses; the pieces (YamlToMessage, ApplyDefaults,
// ValidateConfig) stay separately usable for the Admin API.
#pragma once

#include <string>
#include <string_view>

#include "controlplane/config/config_error.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::config {

struct LoadResult {
  zproxy::v1::Config config;  // meaningful only when ok()
  ConfigErrors errors;        // each located by source:line:column where known
  bool ok() const { return errors.empty(); }
};

// Parses, applies defaults and validates. Validation runs only if the YAML mapped cleanly
// (otherwise it would report follow-on noise). Never throws.
LoadResult LoadConfigYaml(std::string_view yaml_text, std::string_view source_name);

// Reads `path` and calls LoadConfigYaml with the path as the source name.
LoadResult LoadConfigFile(const std::string& path);

// One message of the schema (e.g. a Route for `zproxyctl routes add --route YAML`) from YAML
// text, with the config file's mapping rules. No defaults, no validation (the Admin API
// validates the config it makes). Returns the mapping errors; empty means success.
ConfigErrors LoadMessageYaml(std::string_view yaml_text, std::string_view source_name,
                             google::protobuf::Message* out);

}  // namespace zproxy::config
