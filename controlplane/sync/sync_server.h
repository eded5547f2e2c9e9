// zproxyd's internal DataplaneSync endpoint (proto/zproxy/v1/dataplane_sync.proto): a gRPC
// server on a unix socket (mode 0600) that every data plane dials. This header stays free
// of gRPC; the sessions (who is connected, push + ACK/NACK, stats) live in SessionRegistry.
#pragma once

#include <memory>
#include <string>

#include "controlplane/sync/sync_sessions.h"

namespace zproxy::sync {

// The socket beside the admin socket ("unix:/run/zproxy/admin.sock" ->
// "/run/zproxy/dataplane.sock"), else `state_dir`/dataplane.sock. Returns "" with a reason
// in *error if the path does not fit a sockaddr_un.
std::string SyncSocketPath(const std::string& admin_address, const std::string& state_dir,
                           std::string* error);

class SyncServer {
 public:
  // Creates the directory if needed, removes a stale socket and binds `path` with mode
  // 0600. Call after the supervisor's signals are blocked (gRPC threads inherit the mask).
  static std::unique_ptr<SyncServer> Start(const std::string& path, std::string* error);
  ~SyncServer();

  // Ends every stream and stops serving; removes the socket.
  void Shutdown();

  // "unix:/path", for DataplaneBootstrap.sync_address.
  std::string address() const { return "unix:" + path_; }
  const std::string& path() const { return path_; }
  SessionRegistry& sessions() { return *sessions_; }

  struct Impl;

 private:
  SyncServer(std::string path, std::unique_ptr<SessionRegistry> sessions,
             std::unique_ptr<Impl> impl);

  std::string path_;
  std::unique_ptr<SessionRegistry> sessions_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zproxy::sync
