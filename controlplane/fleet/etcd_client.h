// A thin client of etcd 3.4's gRPC API (KV, Watch, Lease): every call has a deadline
// (dial_timeout_ms), errors come back as text naming the endpoint. Endpoints are tried in
// turn: a call that finds its member unreachable moves the client to the next one, so the
// next call (or the watcher's reconnect) goes elsewhere. Includes gRPC: only controlplane/
// fleet includes this header.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "etcd/rpc.grpc.pb.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::fleet {

class EtcdClient {
 public:
  // Reads the TLS files (if any) and makes one channel per endpoint; nothing is dialed yet.
  static std::unique_ptr<EtcdClient> Create(const zproxy::v1::EtcdSource& source,
                                            std::string* error);

  // One key. *found false when it does not exist; *header_revision is the store's revision
  // the answer was read at.
  bool Get(const std::string& key, mvccpb::KeyValue* kv, bool* found, int64_t* header_revision,
           std::string* error);
  // Every key starting with `prefix`.
  bool GetPrefix(const std::string& prefix, std::vector<mvccpb::KeyValue>* kvs,
                 int64_t* header_revision, std::string* error);

  struct TxnOutcome {
    bool succeeded = false;    // the compare held and the put is done
    int64_t revision = 0;      // the store's revision after the txn (the put's mod_revision)
    bool found = false;        // failure branch: the key exists now...
    mvccpb::KeyValue current;  // ...with this value and mod_revision
  };
  // Puts `value` at `key` if the key's mod_revision is `mod_revision` (0: if the key does
  // not exist, compared on create_revision). On a failed compare, reads the key.
  bool PutIf(const std::string& key, const std::string& value, int64_t mod_revision,
             TxnOutcome* out, std::string* error);

  bool Put(const std::string& key, const std::string& value, int64_t lease, std::string* error);
  bool Delete(const std::string& key, std::string* error);

  bool LeaseGrant(int64_t ttl_s, int64_t* id, std::string* error);
  // One keep-alive round trip. *ttl_s 0: the lease is gone (expired or revoked).
  bool LeaseKeepAlive(int64_t id, int64_t* ttl_s, std::string* error);
  bool LeaseRevoke(int64_t id, std::string* error);

  // A watch of one key from `start_revision` (inclusive), on one stream.
  class Watch {
   public:
    // Blocks for the next response; false when the stream ended (*error says why).
    bool Next(etcdserverpb::WatchResponse* out, std::string* error);
    // Makes a blocked Next return false (from another thread).
    void Cancel() { context_.TryCancel(); }
    // Cancels, drains and finishes the stream (gRPC wants every call finished).
    void Close();

   private:
    friend class EtcdClient;
    grpc::ClientContext context_;
    std::unique_ptr<
        grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
        stream_;
    std::string endpoint_;
    bool finished_ = false;
  };
  // Opens the stream and waits for etcd to confirm the watch (created), within the
  // deadline of one call; the stream itself then has no deadline.
  std::unique_ptr<Watch> WatchKey(const std::string& key, int64_t start_revision,
                                  std::string* error);

  // The endpoint calls go to now ("http://127.0.0.1:2379").
  std::string endpoint() const;

 private:
  struct Member {
    std::string endpoint;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<etcdserverpb::KV::Stub> kv;
    std::unique_ptr<etcdserverpb::Watch::Stub> watch;
    std::unique_ptr<etcdserverpb::Lease::Stub> lease;
  };
  EtcdClient() = default;
  Member& Pick();
  // Sets the deadline; with wait_for_ready a member that is starting up gets the whole
  // deadline to answer instead of failing at once.
  void Prepare(grpc::ClientContext* c) const;
  // Turns a failed status into *error, and moves on to the next member when this one
  // looks unreachable.
  bool Check(const grpc::Status& st, const Member& m, const char* what, std::string* error);

  // fn(member, context) -> status, on each member in turn while they refuse connections.
  template <typename Fn>
  bool Call(const char* what, std::string* error, Fn fn);

  std::vector<std::unique_ptr<Member>> members_;
  std::atomic<size_t> current_{0};
  uint32_t timeout_ms_ = 2000;
};

}  // namespace zproxy::fleet
