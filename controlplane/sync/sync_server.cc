#include "controlplane/sync/sync_server.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "common/log.h"
#include "common/unix_socket_path.h"
#include "zproxy/v1/dataplane_sync.grpc.pb.h"

namespace zproxy::sync {
namespace {

using zproxy::v1::ControlMessage;
using zproxy::v1::DataplaneMessage;

// One Sync stream per data plane. The handler thread reads; Push() writes from the Admin
// API's thread (gRPC allows one reader and one writer at a time on a stream).
class SyncService final : public zproxy::v1::DataplaneSync::Service {
 public:
  explicit SyncService(SessionRegistry* sessions) : sessions_(sessions) {}

  grpc::Status Sync(grpc::ServerContext*,
                    grpc::ServerReaderWriter<ControlMessage, DataplaneMessage>* stream) override {
    DataplaneMessage first;
    if (!stream->Read(&first)) return grpc::Status::OK;
    if (first.kind_case() != DataplaneMessage::kHello) {
      ZLOG_WARN("sync: a data plane stream began without Hello; closing it");
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message must be Hello");
    }
    const pid_t pid = static_cast<pid_t>(first.hello().pid());
    ZLOG_INFO("sync: data plane pid %d connected (serving config version %llu)", pid,
              static_cast<unsigned long long>(first.hello().config_version()));
    auto session = sessions_->Add(first.hello(),
                                  [stream](const ControlMessage& m) { return stream->Write(m); });
    DataplaneMessage m;
    while (stream->Read(&m)) sessions_->OnMessage(session, m);
    sessions_->Remove(session);
    ZLOG_INFO("sync: data plane pid %d disconnected", pid);
    return grpc::Status::OK;
  }

 private:
  SessionRegistry* sessions_;
};

}  // namespace

struct SyncServer::Impl {
  std::unique_ptr<SyncService> service;
  std::unique_ptr<grpc::Server> server;
};

std::string SyncSocketPath(const std::string& admin_address, const std::string& state_dir,
                           std::string* error) {
  std::string path;
  if (admin_address.rfind("unix:", 0) == 0 && admin_address.find('/') != std::string::npos) {
    const std::string admin_path = admin_address.substr(5);
    path = admin_path.substr(0, admin_path.rfind('/')) + "/dataplane.sock";
  } else {
    path = (state_dir.empty() ? std::string(".") : state_dir) + "/dataplane.sock";
  }
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    *error = "data plane sync socket path " + path + " is " + std::to_string(path.size()) +
             " bytes (a unix socket path must be shorter than " +
             std::to_string(sizeof(sockaddr_un::sun_path)) + ")";
    return "";
  }
  return path;
}

SyncServer::SyncServer(std::string path, std::unique_ptr<SessionRegistry> sessions,
                       std::unique_ptr<Impl> impl)
    : path_(std::move(path)), sessions_(std::move(sessions)), impl_(std::move(impl)) {}

SyncServer::~SyncServer() { Shutdown(); }

std::unique_ptr<SyncServer> SyncServer::Start(const std::string& path, std::string* error) {
  if (!PrepareUnixSocketPath(path, "data plane sync socket", error)) return nullptr;
  auto sessions = std::make_unique<SessionRegistry>();
  auto impl = std::make_unique<Impl>();
  impl->service = std::make_unique<SyncService>(sessions.get());
  grpc::ServerBuilder builder;
  // Access control is the socket's mode (0600: root, like the data plane).
  builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials());
  builder.RegisterService(impl->service.get());
  // Never wider than 0600, not even between bind and chmod.
  const mode_t old_umask = umask(0177);
  impl->server = builder.BuildAndStart();
  umask(old_umask);
  if (impl->server == nullptr) {
    *error = "data plane sync socket unix:" + path + ": gRPC server failed to bind";
    return nullptr;
  }
  if (chmod(path.c_str(), 0600) != 0) {
    *error = "data plane sync socket: chmod 0600 " + path + ": " + std::strerror(errno);
    impl->server->Shutdown();
    return nullptr;
  }
  return std::unique_ptr<SyncServer>(new SyncServer(path, std::move(sessions), std::move(impl)));
}

void SyncServer::Shutdown() {
  if (impl_ == nullptr || impl_->server == nullptr) return;
  // Streams never end on their own: cancel them right away.
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  impl_->server->Wait();
  impl_->server.reset();
  unlink(path_.c_str());
}

}  // namespace zproxy::sync
