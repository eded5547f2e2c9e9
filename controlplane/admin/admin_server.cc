#include "controlplane/admin/admin_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/unix_socket_path.h"
#include "controlplane/admin/admin_service.h"

namespace zproxy::admin {

struct AdminServer::Impl {
  std::unique_ptr<AdminService> service;
  std::unique_ptr<grpc::Server> server;
  std::string unix_path;
};

namespace {

bool ReadPem(const std::string& path, const char* field, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (!in || !(text << in.rdbuf())) {
    *error =
        std::string("admin_tls.") + field + ": cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  *out = text.str();
  return true;
}

}  // namespace

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

AdminServer::~AdminServer() { Shutdown(); }

std::unique_ptr<AdminServer> AdminServer::Start(const std::string& address,
                                                const std::string& tls_cert,
                                                const std::string& tls_key,
                                                const std::string& tls_client_ca,
                                                AdminContext context, std::string* error) {
  auto impl = std::make_unique<Impl>();
  std::shared_ptr<grpc::ServerCredentials> creds;
  std::string target = address;
  if (address.rfind("unix:", 0) == 0) {
    impl->unix_path = address.substr(5);
    if (!PrepareUnixSocketPath(impl->unix_path, "admin_address", error)) return nullptr;
    creds = grpc::InsecureServerCredentials();  // access control: the socket's mode
  } else {
    grpc::SslServerCredentialsOptions ssl(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (!ReadPem(tls_cert, "cert", &pair.cert_chain, error) ||
        !ReadPem(tls_key, "key", &pair.private_key, error) ||
        !ReadPem(tls_client_ca, "client_ca", &ssl.pem_root_certs, error)) {
      return nullptr;
    }
    ssl.pem_key_cert_pairs.push_back(std::move(pair));
    creds = grpc::SslServerCredentials(ssl);
  }
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  impl->service = std::make_unique<AdminService>(std::move(context));
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(target, creds, &bound_port);
  builder.RegisterService(impl->service.get());
  // The socket must never exist with a wider mode than 0600, not even briefly: zproxyd has
  // no other threads yet, so the process umask can be narrowed around the bind.
  const mode_t old_umask = impl->unix_path.empty() ? umask(022) : umask(0177);
  impl->server = builder.BuildAndStart();
  umask(old_umask);
  if (impl->server == nullptr || (impl->unix_path.empty() && bound_port == 0)) {
    *error = "admin_address " + address + ": gRPC server failed to bind";
    return nullptr;
  }
  if (!impl->unix_path.empty() && chmod(impl->unix_path.c_str(), 0600) != 0) {
    *error = "admin_address: chmod 0600 " + impl->unix_path + ": " + std::strerror(errno);
    impl->server->Shutdown();
    return nullptr;
  }
  return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

void AdminServer::Shutdown() {
  if (impl_ == nullptr || impl_->server == nullptr) return;
  impl_->service->Stop();
  impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  impl_->server->Wait();
  impl_->server.reset();
  if (!impl_->unix_path.empty()) unlink(impl_->unix_path.c_str());
}

}  // namespace zproxy::admin
