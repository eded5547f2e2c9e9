#include "controlplane/fleet/etcd_client.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "controlplane/fleet/fleet_doc.h"

namespace zproxy::fleet {
namespace {

bool ReadFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  std::ostringstream s;
  s << in.rdbuf();
  *out = s.str();
  return true;
}

}  // namespace

std::unique_ptr<EtcdClient> EtcdClient::Create(const zproxy::v1::EtcdSource& source,
                                               std::string* error) {
  std::unique_ptr<EtcdClient> c(new EtcdClient());
  c->timeout_ms_ = source.dial_timeout_ms() != 0 ? source.dial_timeout_ms() : 2000;
  std::shared_ptr<grpc::ChannelCredentials> tls;
  if (!source.tls().ca().empty() || !source.tls().cert().empty()) {
    grpc::SslCredentialsOptions o;
    if (!source.tls().ca().empty() && !ReadFile(source.tls().ca(), &o.pem_root_certs, error)) {
      *error = "config_source.etcd.tls.ca: " + *error;
      return nullptr;
    }
    if (!source.tls().cert().empty() &&
        (!ReadFile(source.tls().cert(), &o.pem_cert_chain, error) ||
         !ReadFile(source.tls().key(), &o.pem_private_key, error))) {
      *error = "config_source.etcd.tls: " + *error;
      return nullptr;
    }
    tls = grpc::SslCredentials(o);
  }
  for (const std::string& e : source.endpoints()) {
    auto m = std::make_unique<Member>();
    m->endpoint = e;
    std::string target = e;
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    if (e.rfind("https://", 0) == 0) {
      target = e.substr(8);
      creds = tls != nullptr ? tls : grpc::SslCredentials(grpc::SslCredentialsOptions());
    } else if (e.rfind("http://", 0) == 0) {
      target = e.substr(7);
    }
    grpc::ChannelArguments args;
    // Reconnect quickly after a member comes back (the default backoff grows to 120 s).
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    // A watch stream idle for long is still checked: a member that vanished without a FIN
    // is noticed.
    // Not below etcd's --grpc-keepalive-min-time (5 s): it would answer with GOAWAY.
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 2000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    m->channel = grpc::CreateCustomChannel(target, creds, args);
    m->kv = etcdserverpb::KV::NewStub(m->channel);
    m->watch = etcdserverpb::Watch::NewStub(m->channel);
    m->lease = etcdserverpb::Lease::NewStub(m->channel);
    c->members_.push_back(std::move(m));
  }
  if (c->members_.empty()) {
    *error = "config_source.etcd.endpoints: at least one endpoint is required";
    return nullptr;
  }
  return c;
}

EtcdClient::Member& EtcdClient::Pick() { return *members_[current_.load() % members_.size()]; }

std::string EtcdClient::endpoint() const {
  return members_[current_.load() % members_.size()]->endpoint;
}

void EtcdClient::Prepare(grpc::ClientContext* c) const {
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms_));
}

bool EtcdClient::Check(const grpc::Status& st, const Member& m, const char* what,
                       std::string* error) {
  if (st.ok()) return true;
  *error = std::string("etcd ") + what + " at " + m.endpoint + ": " + st.error_message() +
           " (gRPC code " + std::to_string(st.error_code()) + ")";
  if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
      st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    // Only if no other call moved on already.
    size_t seen = current_.load();
    if (members_[seen % members_.size()].get() == &m) {
      current_.compare_exchange_strong(seen, seen + 1);
    }
  }
  return false;
}

template <typename Fn>
bool EtcdClient::Call(const char* what, std::string* error, Fn fn) {
  // A member that refuses the connection is skipped at once: the call goes to the next
  // one instead of failing (the request never left, so nothing runs twice).
  for (size_t tries = 0; tries < members_.size(); ++tries) {
    Member& m = Pick();
    grpc::ClientContext ctx;
    Prepare(&ctx);
    grpc::Status st = fn(m, &ctx);
    if (Check(st, m, what, error)) return true;
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
  }
  return false;
}

bool EtcdClient::Get(const std::string& key, mvccpb::KeyValue* kv, bool* found,
                     int64_t* header_revision, std::string* error) {
  etcdserverpb::RangeRequest req;
  req.set_key(key);
  etcdserverpb::RangeResponse resp;
  if (!Call("range", error,
            [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Range(ctx, req, &resp); })) {
    return false;
  }
  *found = resp.kvs_size() > 0;
  if (*found) *kv = resp.kvs(0);
  *header_revision = resp.header().revision();
  return true;
}

bool EtcdClient::GetPrefix(const std::string& prefix, std::vector<mvccpb::KeyValue>* kvs,
                           int64_t* header_revision, std::string* error) {
  etcdserverpb::RangeRequest req;
  req.set_key(prefix);
  req.set_range_end(PrefixRangeEnd(prefix));
  etcdserverpb::RangeResponse resp;
  if (!Call("range", error,
            [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Range(ctx, req, &resp); })) {
    return false;
  }
  kvs->assign(resp.kvs().begin(), resp.kvs().end());
  *header_revision = resp.header().revision();
  return true;
}

bool EtcdClient::PutIf(const std::string& key, const std::string& value, int64_t mod_revision,
                       TxnOutcome* out, std::string* error) {
  etcdserverpb::TxnRequest req;
  etcdserverpb::Compare* cmp = req.add_compare();
  cmp->set_key(key);
  cmp->set_result(etcdserverpb::Compare::EQUAL);
  if (mod_revision == 0) {
    cmp->set_target(etcdserverpb::Compare::CREATE);
    cmp->set_create_revision(0);
  } else {
    cmp->set_target(etcdserverpb::Compare::MOD);
    cmp->set_mod_revision(mod_revision);
  }
  etcdserverpb::PutRequest* put = req.add_success()->mutable_request_put();
  put->set_key(key);
  put->set_value(value);
  req.add_failure()->mutable_request_range()->set_key(key);
  etcdserverpb::TxnResponse resp;
  if (!Call("txn", error,
            [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Txn(ctx, req, &resp); })) {
    return false;
  }
  out->succeeded = resp.succeeded();
  out->revision = resp.header().revision();
  out->found = false;
  if (!resp.succeeded() && resp.responses_size() > 0 &&
      resp.responses(0).response_range().kvs_size() > 0) {
    out->found = true;
    out->current = resp.responses(0).response_range().kvs(0);
  }
  return true;
}

bool EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease,
                     std::string* error) {
  etcdserverpb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  etcdserverpb::PutResponse resp;
  return Call("put", error,
              [&](Member& m, grpc::ClientContext* ctx) { return m.kv->Put(ctx, req, &resp); });
}

bool EtcdClient::Delete(const std::string& key, std::string* error) {
  etcdserverpb::DeleteRangeRequest req;
  req.set_key(key);
  etcdserverpb::DeleteRangeResponse resp;
  return Call("delete", error, [&](Member& m, grpc::ClientContext* ctx) {
    return m.kv->DeleteRange(ctx, req, &resp);
  });
}

bool EtcdClient::LeaseGrant(int64_t ttl_s, int64_t* id, std::string* error) {
  etcdserverpb::LeaseGrantRequest req;
  req.set_ttl(ttl_s);
  etcdserverpb::LeaseGrantResponse resp;
  if (!Call("lease grant", error, [&](Member& m, grpc::ClientContext* ctx) {
        return m.lease->LeaseGrant(ctx, req, &resp);
      })) {
    return false;
  }
  if (!resp.error().empty()) {
    *error = "etcd lease grant at " + endpoint() + ": " + resp.error();
    return false;
  }
  *id = resp.id();
  return true;
}

bool EtcdClient::LeaseKeepAlive(int64_t id, int64_t* ttl_s, std::string* error) {
  Member& m = Pick();
  grpc::ClientContext ctx;
  Prepare(&ctx);
  auto stream = m.lease->LeaseKeepAlive(&ctx);
  etcdserverpb::LeaseKeepAliveRequest req;
  req.set_id(id);
  etcdserverpb::LeaseKeepAliveResponse resp;
  bool ok = stream->Write(req) && stream->Read(&resp);
  stream->WritesDone();
  grpc::Status st = stream->Finish();
  if (!ok) {
    if (st.ok()) st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "keep-alive stream ended");
    return Check(st, m, "lease keep-alive", error);
  }
  *ttl_s = resp.ttl();
  return true;
}

bool EtcdClient::LeaseRevoke(int64_t id, std::string* error) {
  etcdserverpb::LeaseRevokeRequest req;
  req.set_id(id);
  etcdserverpb::LeaseRevokeResponse resp;
  return Call("lease revoke", error, [&](Member& m, grpc::ClientContext* ctx) {
    return m.lease->LeaseRevoke(ctx, req, &resp);
  });
}

std::unique_ptr<EtcdClient::Watch> EtcdClient::WatchKey(const std::string& key,
                                                        int64_t start_revision,
                                                        std::string* error) {
  Member& m = Pick();
  auto w = std::make_unique<Watch>();
  w->endpoint_ = m.endpoint;
  // etcd refuses watches on a member that lost its leader only with this metadata;
  // without it a partitioned member would keep the stream open and silent.
  w->context_.AddMetadata("hasleader", "true");
  w->stream_ = m.watch->Watch(&w->context_);
  etcdserverpb::WatchRequest req;
  req.mutable_create_request()->set_key(key);
  req.mutable_create_request()->set_start_revision(start_revision);
  if (!w->stream_->Write(req)) {
    grpc::Status st = w->stream_->Finish();
    w->finished_ = true;
    if (st.ok()) st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "watch stream closed");
    Check(st, m, "watch", error);
    return nullptr;
  }
  return w;
}

void EtcdClient::Watch::Close() {
  if (finished_) return;
  context_.TryCancel();
  etcdserverpb::WatchResponse ignored;
  while (stream_->Read(&ignored)) {
  }
  (void)stream_->Finish();
  finished_ = true;
}

bool EtcdClient::Watch::Next(etcdserverpb::WatchResponse* out, std::string* error) {
  if (stream_->Read(out)) return true;
  grpc::Status st = stream_->Finish();
  finished_ = true;
  *error = "etcd watch at " + endpoint_ +
           " ended: " + (st.ok() ? std::string("stream closed") : st.error_message());
  return false;
}

}  // namespace zproxy::fleet
