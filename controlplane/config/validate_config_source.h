// Checks of config_source and node (fleet mode, docs/fleet.md), kept apart from the rest
// of validation: they concern where the config comes from, not what it says.
#pragma once

#include "controlplane/config/config_error.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::config {

// Appends one error per problem, each naming its field.
void ValidateConfigSource(const zproxy::v1::Config& config, ConfigErrors* errors);

}  // namespace zproxy::config
