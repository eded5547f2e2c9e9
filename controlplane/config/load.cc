#include "controlplane/config/load.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "controlplane/config/defaults.h"
#include "controlplane/config/validate.h"
#include "controlplane/config/yaml_to_proto.h"

namespace zproxy::config {
namespace {

const YamlMappingOptions& MappingOptions() {
  static const YamlMappingOptions options{{{"zproxy.v1.Endpoint", "address"}}};
  return options;
}

// Points a validation error at the YAML that produced it: the longest recorded prefix of
// its field path ("listeners[1].routes[0].cluster", else "listeners[1].routes[0]", ...).
void Locate(const SourceMap& map, ConfigError* e) {
  std::string path = e->field_path;
  while (!path.empty()) {
    auto it = map.find(path);
    if (it != map.end()) {
      e->line = it->second.line;
      e->column = it->second.column;
      return;
    }
    size_t cut = path.find_last_of(".[");
    if (cut == std::string::npos) return;
    path.resize(cut);
  }
}

}  // namespace

LoadResult LoadConfigYaml(std::string_view yaml_text, std::string_view source_name) {
  LoadResult result;
  const std::string source(source_name);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    // e.msg is the bare reason; e.what() repeats the position in yaml-cpp's own format.
    int line = e.mark.line >= 0 ? e.mark.line + 1 : 0;
    int column = e.mark.column >= 0 ? e.mark.column + 1 : 0;
    result.errors.push_back(ConfigError{"", "YAML syntax error: " + e.msg, source, line, column});
    return result;
  }
  SourceMap source_map;
  result.errors = YamlToMessage(root, MappingOptions(), source, &result.config, &source_map);
  if (!result.errors.empty()) return result;

  ApplyDefaults(&result.config);
  for (ConfigError& e : ValidateConfig(result.config)) {
    e.source = source;
    Locate(source_map, &e);
    result.errors.push_back(std::move(e));
  }
  return result;
}

LoadResult LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult result;
    result.errors.push_back(
        ConfigError{"", std::string("cannot open: ") + std::strerror(errno), path, 0, 0});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    LoadResult result;
    result.errors.push_back(
        ConfigError{"", std::string("cannot read: ") + std::strerror(errno), path, 0, 0});
    return result;
  }
  return LoadConfigYaml(text.str(), path);
}

ConfigErrors LoadMessageYaml(std::string_view yaml_text, std::string_view source_name,
                             google::protobuf::Message* out) {
  YAML::Node node;
  try {
    node = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return {ConfigError{"", std::string("invalid YAML: ") + e.what(), std::string(source_name),
                        e.mark.line + 1, e.mark.column + 1}};
  }
  return YamlToMessage(node, MappingOptions(), source_name, out, nullptr);
}

}  // namespace zproxy::config
