#include "controlplane/startup/sync_start.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/log.h"

namespace zproxy::controlplane::startup {

std::unique_ptr<sync::SyncServer> StartSyncServer(const zproxy::v1::Config& config) {
  std::string error;
  std::unique_ptr<sync::SyncServer> sync_server;
  const std::string sync_path =
      sync::SyncSocketPath(config.admin_address(), config.state_dir(), &error);
  if (!sync_path.empty()) sync_server = sync::SyncServer::Start(sync_path, &error);
  if (sync_server == nullptr) {
    ZLOG_WARN("data plane sync disabled: %s (every config change restarts the data plane)",
              error.c_str());
  }
  // A data plane running as dataplane_user dials (and after a zproxyd restart redials)
  // this socket without privileges: it becomes the socket's owner, mode stays 0600.
  const std::string& user = config.dataplane_user();
  if (sync_server != nullptr && !user.empty()) {
    const passwd* pw = getpwnam(user.c_str());
    if (pw == nullptr || chown(sync_server->path().c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      ZLOG_WARN("data plane sync socket %s: cannot hand it to dataplane_user %s: %s",
                sync_server->path().c_str(), user.c_str(),
                pw == nullptr ? "no such user" : strerror(errno));
    }
  }
  return sync_server;
}

}  // namespace zproxy::controlplane::startup
