// Route policy in the worker: a route's own answers (redirect, direct response), request
// IDs, header-value variables and response header changes. The policies themselves are
// protocol-free (dataplane/proxy/); this file only feeds them the exchange's facts and
// the worker's scratch memory, for HTTP/1 and HTTP/2 clients alike.
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "dataplane/proxy/redirect.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

proxy::Variables Worker::VariablesOf(const Exchange& ex, char* ip, size_t ip_cap) {
  Conn& c = conns_.Get(ex.client);
  proxy::Variables v;
  v.client_address = ClientIp(c, ip, ip_cap);
  v.request_id = std::string_view(ex.request_id, ex.request_id_len);
  v.listener = snap_->listeners[c.owner].name;
  v.tls_version = tls_.Version(c);
  v.tls_sni = tls_.ServerName(c);
  return v;
}

bool Worker::TakeRequestId(Exchange& ex, const ListenerRuntime& listener,
                           const http::RequestHead& req) {
  std::string_view client_id;
  for (const http::Field& f : req.fields) {
    if (http1::EqualsIgnoreCase(f.name, "x-request-id")) {
      client_id = f.value;
      break;
    }
  }
  auto keep = [&](std::string_view id) {
    ex.request_id_len = static_cast<uint8_t>(std::min(id.size(), sizeof(ex.request_id)));
    // An absent ID is a null view: memcpy must not see its null pointer.
    if (ex.request_id_len != 0) memcpy(ex.request_id, id.data(), ex.request_id_len);
  };
  // Off: a client's ID still goes through as sent, and is logged.
  if (!listener.request_id) {
    keep(client_id);
    return false;
  }
  // A longer ID than we keep would be logged cut: a new one replaces it.
  if (!client_id.empty() && !listener.request_id_ignore_client &&
      client_id.size() <= sizeof(ex.request_id)) {
    keep(client_id);
    return false;
  }
  keep(request_ids_.Next(std::span<char, proxy::RequestIdGenerator::kLength>(
      ex.request_id, proxy::RequestIdGenerator::kLength)));
  return true;
}

void Worker::AnswerFromRoute(const routing::RouteEntry& route, const http::RequestHead& req,
                             Exchange& ex, Refusal* refusal) {
  const routing::RoutePolicy& p = *route.policy;
  const std::span<char> scratch(local_scratch_);
  const size_t half = scratch.size() / 2;
  size_t nf = 0;
  refusal->keep_alive = true;
  refusal->omit_body = req.method_id == http::Method::kHead;
  if (p.action == routing::RouteAction::kRedirect) {
    std::string_view location =
        proxy::BuildLocation(p.redirect, p.matched_prefix_len, req, scratch.first(half));
    if (location.empty()) {
      stats_.CountError(ErrorCause::kBadResponse);
      refusal->status = 500;
      refusal->body = "zproxy: redirect location too long\n";
      refusal->note = "redirect_failed";
      refusal->keep_alive = false;
      return;
    }
    local_fields_[nf++] = http::Field{"Location", location};
    refusal->status = p.redirect.code;
    refusal->body = {};
    refusal->note = "redirect";
  } else {
    refusal->status = p.direct.status;
    refusal->body = p.direct.body;
    refusal->content_type = p.direct.content_type;
    refusal->note = "direct_response";
  }
  std::span<http::Field> fields(local_fields_, nf);
  if (!p.response_headers.empty()) {
    proxy::ScratchWriter w(scratch.subspan(half));
    char ip[INET6_ADDRSTRLEN];
    const routing::HeaderChanges* layers[] = {&p.response_headers};
    // In place: the changes compact the fields forward, then append.
    std::span<http::Field> all(local_fields_, H2Sessions::kMaxLocalExtraFields);
    proxy::ApplyHeaderChanges(layers, VariablesOf(ex, ip, sizeof(ip)), &fields, all, &w);
  }
  refusal->fields = fields;
}

void Worker::ApplyResponseChanges(const Exchange& ex, http::ResponseHead& resp) {
  if (ex.route == nullptr) return;
  const Snapshot& snap = *snap_holds_[ex.snap_hold].snap;
  const routing::RoutePolicy* p = ex.route->policy.get();
  const routing::HeaderChanges* layers[] = {
      p != nullptr ? &p->response_headers : nullptr,
      &snap.clusters[ex.route->cluster_index].response_headers};
  if ((layers[0] == nullptr || layers[0]->empty()) && layers[1]->empty()) return;
  proxy::ScratchWriter w(resp_scratch_);
  char ip[INET6_ADDRSTRLEN];
  std::span<http::Field> fields = resp.fields;
  if (proxy::ApplyHeaderChanges(layers, VariablesOf(ex, ip, sizeof(ip)), &fields, resp_fields_,
                                &w)) {
    resp.fields = fields;
  } else {
    stats_.CountError(ErrorCause::kHeaderChangesTooLarge);
  }
}

}  // namespace zproxy::dataplane
