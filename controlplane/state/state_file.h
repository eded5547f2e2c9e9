// The Admin API's persisted state: `state_dir`/state.pb, a serialized PersistedState,
// written atomically (temp file, fsync, rename, fsync of the directory), so a crash leaves
// either the old or the new state, never a torn one.
#pragma once

#include <string>
#include <string_view>

#include "zproxy/v1/admin.pb.h"

namespace zproxy::state {

// "<dir>/state.pb".
std::string StatePath(const std::string& dir);

// Creates `dir` (mode 0700, parents too) if needed and replaces the state file.
bool SaveState(const std::string& dir, const zproxy::v1::PersistedState& state, std::string* error);

enum class LoadStatus { kOk, kMissing, kError };

// kMissing when there is no state file; kError (with *error) when it cannot be read or
// parsed.
LoadStatus LoadState(const std::string& dir, zproxy::v1::PersistedState* state, std::string* error);

// Lowercase hex SHA-256.
std::string Sha256Hex(std::string_view data);

}  // namespace zproxy::state
