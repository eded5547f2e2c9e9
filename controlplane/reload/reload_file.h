// SIGHUP's work, without threads or signals: re-read the config file, validate it, and
// replace the running config through the same path as the Admin API's ApplyConfig
// (state::ConfigManager: persist, push live or hand over, publish). A file that does not
// load, or a change that needs a zproxyd restart, leaves the running config untouched.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "controlplane/state/config_manager.h"

namespace zproxy::reload {

struct ReloadOutcome {
  enum Kind {
    kApplied,    // a new version serves
    kUnchanged,  // the file says what already serves
    kInvalid,    // the file does not load or validate (errors name field and line)
    kRefused,    // valid, but not applicable live (restart-only fields) or the apply failed
  };
  Kind kind = kInvalid;
  uint64_t version = 0;             // serving afterwards
  std::vector<std::string> errors;  // kInvalid: one per problem; kRefused: one per line
  bool ok() const { return kind == kApplied || kind == kUnchanged; }
};

ReloadOutcome ReloadFromFile(state::ConfigManager& manager, const std::string& path);

// One info line on success; one error line per problem and a summary otherwise.
void LogReloadOutcome(const ReloadOutcome& outcome, const std::string& path);

}  // namespace zproxy::reload
