#include "controlplane/fleet/fleet_doc.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include "controlplane/config/load.h"

namespace zproxy::fleet {

using zproxy::v1::Config;

std::string NormalizePrefix(const std::string& prefix) {
  if (!prefix.empty() && prefix.back() == '/') return prefix;
  return prefix + "/";
}

std::string ConfigKey(const std::string& prefix) { return NormalizePrefix(prefix) + "config"; }

std::string NodesPrefix(const std::string& prefix) { return NormalizePrefix(prefix) + "nodes/"; }

std::string NodeKey(const std::string& prefix, const std::string& node) {
  return NodesPrefix(prefix) + node;
}

std::string PrefixRangeEnd(const std::string& prefix) {
  std::string end = prefix;
  // The last byte that can be incremented is; everything after it is dropped.
  while (!end.empty()) {
    unsigned char c = static_cast<unsigned char>(end.back());
    if (c < 0xff) {
      end.back() = static_cast<char>(c + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // etcd: "\0" = every key >= key
}

bool IsFleetField(const std::string& field_name) {
  return field_name == "listeners" || field_name == "clusters";
}

Config FleetPart(const Config& config) {
  Config fleet;
  *fleet.mutable_listeners() = config.listeners();
  *fleet.mutable_clusters() = config.clusters();
  return fleet;
}

Config MergeNode(const Config& node_config, const Config& fleet) {
  Config out = node_config;
  *out.mutable_listeners() = fleet.listeners();
  *out.mutable_clusters() = fleet.clusters();
  const auto& overrides = node_config.node().listener_addresses();
  for (auto& l : *out.mutable_listeners()) {
    auto it = overrides.find(l.name());
    if (it != overrides.end()) l.set_address(it->second);
  }
  return out;
}

Config UnmergeNode(const Config& edited, const Config& fleet_before, const zproxy::v1::Node& node) {
  Config fleet = FleetPart(edited);
  const auto& overrides = node.listener_addresses();
  for (auto& l : *fleet.mutable_listeners()) {
    auto it = overrides.find(l.name());
    if (it == overrides.end() || it->second != l.address()) continue;
    for (const auto& before : fleet_before.listeners()) {
      if (before.name() == l.name()) l.set_address(before.address());
    }
  }
  return fleet;
}

std::vector<std::string> NodeLocalChanges(const Config& a, const Config& b) {
  std::vector<std::string> changed;
  const google::protobuf::Descriptor* d = Config::descriptor();
  const google::protobuf::Reflection* r = Config::GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* f = d->field(i);
    if (IsFleetField(f->name())) continue;
    Config only_a, only_b;
    // Both configs with every other field cleared: works for every field kind.
    only_a.CopyFrom(a);
    only_b.CopyFrom(b);
    for (int j = 0; j < d->field_count(); ++j) {
      if (j == i) continue;
      r->ClearField(&only_a, d->field(j));
      r->ClearField(&only_b, d->field(j));
    }
    if (!google::protobuf::util::MessageDifferencer::Equals(only_a, only_b)) {
      changed.push_back(f->name());
    }
  }
  return changed;
}

std::string SerializeFleet(const Config& fleet) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.add_whitespace = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(FleetPart(fleet), &out, opts);
  return out;
}

bool ParseFleet(std::string_view text, Config* fleet, std::string* error) {
  Config parsed;
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string_view::npos && text[first] == '{') {
    google::protobuf::util::JsonParseOptions opts;
    auto st = google::protobuf::util::JsonStringToMessage(std::string(text), &parsed, opts);
    if (!st.ok()) {
      *error = "not a valid fleet config (JSON): " + st.ToString();
      return false;
    }
  } else {
    config::ConfigErrors errors = config::LoadMessageYaml(text, "fleet config", &parsed);
    if (!errors.empty()) {
      *error = "";
      for (const auto& e : errors) *error += (error->empty() ? "" : "\n") + e.ToString();
      return false;
    }
  }
  std::vector<std::string> local = NodeLocalChanges(parsed, Config());
  if (!local.empty()) {
    *error = local[0] +
             ": node-local, not allowed in the fleet config (only listeners and clusters; "
             "set it in each node's file)";
    return false;
  }
  *fleet = std::move(parsed);
  return true;
}

}  // namespace zproxy::fleet
