// Preparing a filesystem path for a unix listening socket: create its directory
// (mkdir -p, 0755) and remove a stale socket left by a previous process. Refuses to
// remove anything that is not a socket.
#pragma once

#include <string>
#include <string_view>

namespace zproxy {

// `what` names the setting in error messages, e.g. "admin_address".
bool PrepareUnixSocketPath(const std::string& path, std::string_view what, std::string* error);

}  // namespace zproxy
