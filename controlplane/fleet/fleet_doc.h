// The fleet config as it lives in etcd, and how a node's local config is made from it.
// Pure functions (no etcd, no I/O) so they are unit tested directly.
//
// The fleet part of a Config is its listeners and clusters (with their routes and
// policies); every other field is node-local and comes from the node's own file. A node's
// config = its file's node-local fields + the fleet part, with node.listener_addresses
// overriding a fleet listener's address on this node.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "zproxy/v1/config.pb.h"

namespace zproxy::fleet {

// "/zproxy/a" -> "/zproxy/a/" (keys below it are "<prefix>config", "<prefix>nodes/...").
std::string NormalizePrefix(const std::string& prefix);
std::string ConfigKey(const std::string& prefix);
std::string NodesPrefix(const std::string& prefix);
std::string NodeKey(const std::string& prefix, const std::string& node);
// etcd's range_end for "every key starting with `prefix`".
std::string PrefixRangeEnd(const std::string& prefix);

// True for the fields that belong to the fleet (listeners, clusters).
bool IsFleetField(const std::string& field_name);

// Only the fleet fields of `config`.
zproxy::v1::Config FleetPart(const zproxy::v1::Config& config);

// `node_config` with its fleet fields replaced by `fleet`'s, then the listener address
// overrides of node_config.node() applied.
zproxy::v1::Config MergeNode(const zproxy::v1::Config& node_config,
                             const zproxy::v1::Config& fleet);

// The inverse for an edited node config: its fleet part, where a listener whose address is
// still this node's override gets the fleet address back (from `fleet_before`, by name),
// so an edit made through one node never writes that node's address into the fleet.
zproxy::v1::Config UnmergeNode(const zproxy::v1::Config& edited,
                               const zproxy::v1::Config& fleet_before,
                               const zproxy::v1::Node& node);

// Names of the node-local (non-fleet) top-level fields that differ between a and b.
std::vector<std::string> NodeLocalChanges(const zproxy::v1::Config& a, const zproxy::v1::Config& b);

// What is written to <prefix>config: protobuf JSON with the proto field names (the YAML
// keys), readable with `etcdctl get`.
std::string SerializeFleet(const zproxy::v1::Config& fleet);

// Reads <prefix>config: JSON (what zproxy writes) or YAML (what an operator may write with
// etcdctl, same keys as the config file). Only fleet fields may be set. No defaults, no
// validation. false + *error naming the field or position on failure.
bool ParseFleet(std::string_view text, zproxy::v1::Config* fleet, std::string* error);

}  // namespace zproxy::fleet
