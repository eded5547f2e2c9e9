// The config a node in fleet mode starts with (docs/fleet.md, "Start"): the fleet config
// in etcd merged into the file's node-local settings; if the prefix is empty, the file's
// fleet part is written there first (one transaction: if another node seeded first, its
// config is used); if etcd cannot be reached, the state_dir snapshot of the last fleet
// config this node applied; failing that, the file.
#pragma once

#include <cstdint>
#include <string>

#include "controlplane/fleet/etcd_client.h"
#include "controlplane/state/config_manager.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::fleet {

struct FleetStart {
  state::StartupConfig startup;  // source: "etcd", "etcd (seeded)", "snapshot" or "file"
  int64_t revision = 0;          // the etcd revision of startup.config's fleet part (0: none)
  bool reached = false;          // etcd answered
};

// `file_config` has defaults applied and was validated; its node.name is filled in.
FleetStart ChooseFleetStartupConfig(const zproxy::v1::Config& file_config,
                                    const std::string& file_path, EtcdClient* client);

// "node.name", or the host name when it is empty.
std::string NodeName(const zproxy::v1::Config& config);

}  // namespace zproxy::fleet
