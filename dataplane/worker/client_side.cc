// Client side of the data path: accepting connections, reading and parsing request
// heads, routing, and streaming request bodies to the upstream.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "dataplane/codec/http2/request_block.h"
#include "dataplane/proxy/path_rewrite.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

namespace {
using codec::http1::RequestLine;

// liburing 2.3 predates io_uring socket commands (kernel 6.7); the ABI constants are
// stable, so they are defined here and guarded by the runtime result.
constexpr uint32_t kSocketUringOpGetsockopt = 2;
}  // namespace

void Worker::OnAccept(uint32_t socket_index, io_uring_cqe* cqe) {
  bool more = cqe->flags & IORING_CQE_F_MORE;
  if (!more) {
    accept_armed_[socket_index] = false;
    if (!draining_) {
      uint32_t more_since = 0;
      // (Out of descriptors has its own line below.)
      bool out_of_fds = cqe->res == -ENFILE || cqe->res == -EMFILE;
      if (cqe->res < 0 && cqe->res != -ECANCELED && !out_of_fds &&
          accept_log_.Allow(NowMs(), &more_since)) {
        ZLOG_WARN("worker %u: accept ended: %s; re-arming (%u more since the last line)",
                  options_.index, strerror(-cqe->res), more_since);
      }
      ArmAccept(socket_index);
    }
  }
  if (cqe->res < 0) {
    uint32_t more_since = 0;
    if ((cqe->res == -ENFILE || cqe->res == -EMFILE) && fd_table_log_.Allow(NowMs(), &more_since)) {
      ZLOG_WARN(
          "worker %u: accept: %s (registered file table full: raise the limit; %u more since "
          "the last line)",
          options_.index, strerror(-cqe->res), more_since);
    }
    return;
  }
  // A direct descriptor (index into the registered file table), or a regular one for
  // TLS listeners (see ArmAccept).
  bool fixed = io::UserData::Unpack(cqe->user_data).bid == 0;
  int fd = cqe->res;
  uint16_t listener = sockets_[socket_index].listener;
  if (!AdmitConnection(listener, fd, fixed)) return;  // max_connections (limits.cc)
  uint32_t idx = NewConn(ConnKind::kClient, fd, listener);
  Conn& c = conns_.Get(idx);
  if (fixed) c.flags |= kFixedFile;
  stats_.accepts.Add();
  stats_.client_idle.Add();
  // A connection accepted while draining (completions already queued when the accept was
  // cancelled) is still ours to serve: its first response says Connection: close.
  if (snap_->listeners[listener].original_destination) {
    LearnOriginalDst(idx, fixed);  // the client address too
  } else if ((snap_->listeners[listener].add_forwarded_headers || access_log_.enabled() ||
              snap_->listeners[listener].needs_client_address) &&
             snap_->listeners[listener].tcp_cluster < 0) {
    // The client address for X-Forwarded-For. Multishot accept shares one address buffer
    // across completions, so ask the socket instead: getsockopt(SO_PEERNAME) as an
    // io_uring command on the direct descriptor, no extra syscall. Queued before the
    // recv, so it completes first.
    io_uring_sqe* sqe = ring_.Sqe();
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = fd;
    sqe->flags = fixed ? IOSQE_FIXED_FILE : 0;
    sqe->cmd_op = kSocketUringOpGetsockopt;
    uint32_t* level_optname = reinterpret_cast<uint32_t*>(&sqe->addr);
    level_optname[0] = SOL_SOCKET;
    level_optname[1] = SO_PEERNAME;
    sqe->addr3 = reinterpret_cast<uint64_t>(&c.peer);
    // SO_PEERNAME rejects an optlen larger than the address.
    sqe->file_index =
        socket_family_[socket_index] == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
    io_uring_sqe_set_data64(sqe, Ud(io::Op::kPeerName, idx));
    c.flags |= kPeerPending;
    c.inflight++;
  }
  if (snap_->listeners[listener].tcp_cluster >= 0) {
    tunnels_.StartTcpProxy(idx);  // arms the receive in copy mode only
    return;
  }
  ArmRecv(idx);
  if (snap_->listeners[listener].tls != nullptr) {
    // The handshake timeout runs until the handshake is done, then the header timeout.
    if (!tls_.Accept(idx)) {
      stats_.tls_errors.Add();
      CloseConn(idx);
    }
    return;
  }
  timers_.Arm(t_client_header_[listener], idx, NowMs());
}

void Worker::OnPeerName(uint32_t conn_idx, int res) {
  Conn& c = conns_.Get(conn_idx);
  c.inflight--;
  c.flags &= ~kPeerPending;
  if (res < 0) {
    c.peer.sin6_family = AF_UNSPEC;
    stats_.peername_failures.Add();
    if (!peername_warned_) {
      peername_warned_ = true;
      ZLOG_WARN(
          "worker %u: getsockopt(SO_PEERNAME) via io_uring failed (%s; needs kernel >= "
          "6.7): X-Forwarded-For will not carry the client address",
          options_.index, strerror(-res));
    }
  }
  if (c.flags & kClosing) {
    MaybeFreeConn(conn_idx);
    return;
  }
  if (c.io != kNil && ios_.Get(c.io).in_count > 0) ProcessClientInput(conn_idx);
}

std::string_view Worker::ClientIp(Conn& c, char* buf, size_t cap) {
  if (c.peer.sin6_family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&c.peer);
    if (inet_ntop(AF_INET, &v4->sin_addr, buf, static_cast<socklen_t>(cap)) != nullptr) return buf;
  } else if (c.peer.sin6_family == AF_INET6) {
    if (inet_ntop(AF_INET6, &c.peer.sin6_addr, buf, static_cast<socklen_t>(cap)) != nullptr) {
      return buf;
    }
  }
  return {};
}

void Worker::SendLocalResponse(uint32_t conn_idx, int status, std::string_view body, bool close,
                               std::string_view request_line, std::string_view note) {
  Refusal r;
  r.status = status;
  r.body = body;
  r.note = note;
  SendLocalResponse(conn_idx, r, close, request_line);
}

void Worker::SendLocalResponse(uint32_t conn_idx, const Refusal& r, bool close,
                               std::string_view request_line) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & kClosing) return;
  const int status = r.status;
  const std::string_view note = r.note;
  codec::http1::LocalResponse response;
  response.status = r.status;
  response.body = r.body;
  response.content_type = r.content_type;
  response.fields = r.fields;
  response.close = close;
  response.omit_body = r.omit_body;
  response.retry_after_s = r.retry_after_s;
  size_t len = 0;
  uint32_t b = WriteIntoBlock(
      [&](char* out, size_t cap) { return codec::http1::EncodeLocalResponse(response, out, cap); },
      &len);
  if (b == kNil) {  // a route's answer too large for a block: validation bounds it, but
    SendLocalResponse(conn_idx, 500, "zproxy: response too large\n", true, request_line,
                      "local_response_too_large");
    return;
  }
  QueueOut(conn_idx, blocks_.Data(b), static_cast<uint32_t>(len), ItemOwner::kBlock, b);
  stats_.CountStatus(status);
  if (access_log_.enabled() && !note.empty()) {
    // zproxy's own answer to a request that never reached an upstream.
    char ip[INET6_ADDRSTRLEN];
    char tls[96];
    AccessEntry e;
    e.client = ClientIp(c, ip, sizeof(ip));
    e.request_line = request_line;
    e.status = status;
    e.bytes = len;
    e.note = note;
    e.tls = tls_.LogField(c, tls, sizeof(tls));
    e.request_id = r.request_id;
    e.traceparent = r.traceparent;
    access_log_.Append(e);
  }
  if (close) {
    // Nothing after this response will be read: drop input, stop reading, close once
    // the response is out.
    c.flags |= kCloseAfterSend | kLingerNeeded;
    DropInput(conn_idx);
    PauseRecv(conn_idx);
    timers_.Disarm(conn_idx);
  }
  Flush(conn_idx);
}

void Worker::RejectRequest(uint32_t conn_idx, http1::Error error, std::string_view request_line) {
  stats_.parser_rejections[static_cast<int>(error)].Add();
  char body[128];
  int n = snprintf(body, sizeof(body), "zproxy: bad request (%s)\n", http1::ErrorName(error));
  SendLocalResponse(conn_idx, http1::ErrorHttpStatus(error),
                    std::string_view(body, static_cast<size_t>(n)), true, request_line,
                    http1::ErrorName(error));
}

void Worker::ProcessClientInput(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & kClosing) return;
  if (c.exchange != kNil) {
    if (exchanges_.Get(c.exchange).tunnel.active) {
      tunnels_.Pump(c.exchange, true);
    } else {
      PumpRequestBody(c.exchange);
    }
    return;
  }
  if (c.flags & kCloseAfterSend) {
    DropInput(conn_idx);
    return;
  }
  if (c.flags & kPeerPending) return;  // parse once the client address is known
  if (c.h2 != 0) {
    h2_.OnInput(conn_idx);
    return;
  }
  if (c.exchange == kNil && StartsHttp2(conn_idx)) {
    if (conns_.Get(conn_idx).h2 != 0) h2_.OnInput(conn_idx);
    return;
  }
  while (!(conns_.Get(conn_idx).flags & (kClosing | kCloseAfterSend)) &&
         conns_.Get(conn_idx).exchange == kNil) {
    ConnIo& io = Io(conn_idx);
    if (io.in_count == 0) break;
    const InSlice& front = InFront(io);
    std::string_view data(SliceData(front), front.len);
    if (!DecodeRequestHead(conn_idx, data, front.is_block)) {
      if (io.in_count > 1) {
        CoalesceInput(conn_idx);
        continue;
      }
      // Incomplete head: wait for more within the header timeout.
      Conn& c2 = conns_.Get(conn_idx);
      if (c2.timer.list != t_client_header_[c2.owner]) {
        timers_.Arm(t_client_header_[c2.owner], conn_idx, NowMs());
      }
      break;
    }
  }
}

// HTTP/2 on this connection: ALPN chose h2, or a plaintext client sent the preface
// (prior knowledge). true: HTTP/2 started, or too few bytes yet to tell (wait).
bool Worker::StartsHttp2(uint32_t conn_idx) {
  Conn& c = conns_.Get(conn_idx);
  bool h2 = false;
  if (c.tls != kNil) {
    h2 = tls_.Protocol(c) == transport::AppProtocol::kHttp2;
  } else {
    ConnIo& io = Io(conn_idx);
    const InSlice& front = InFront(io);
    int m = H2Sessions::MatchPreface(std::string_view(SliceData(front), front.len));
    if (m < 0 && io.in_count > 1) {
      CoalesceInput(conn_idx);
      const InSlice& merged = InFront(io);
      m = H2Sessions::MatchPreface(std::string_view(SliceData(merged), merged.len));
    }
    if (m < 0) return true;  // a prefix of the preface: wait for the rest
    h2 = m == 1;
  }
  if (!h2) return false;
  timers_.Disarm(conn_idx);
  h2_.Start(conn_idx);
  return true;
}

// Returns false when the head is incomplete (nothing consumed); true when it was
// handled (forwarded, answered locally, or rejected).
bool Worker::DecodeRequestHead(uint32_t conn_idx, std::string_view data, bool assembled) {
  Conn& c = conns_.Get(conn_idx);
  const ListenerRuntime& listener = snap_->listeners[c.owner];
  codec::http1::RequestHeadEvent ev;
  http1::Error err = http1::Error::kNone;
  http1::Status st = codec::http1::DecodeRequestHead(data, listener.limits, header_storage_,
                                                     tls_.Scheme(c), &ev, &err);
  if (st == http1::Status::kNeedMore) {
    if (assembled && data.size() >= blocks_.large_size()) {
      RejectRequest(conn_idx, http1::Error::kHeadersTooLarge);
      return true;
    }
    return false;
  }
  if (st == http1::Status::kError) {
    RejectRequest(conn_idx, err);
    return true;
  }
  timers_.Disarm(conn_idx);
  StartStream(conn_idx, ev);
  return true;
}

bool Worker::RouteRequest(uint32_t ex_idx, http::RequestHead& req, Refusal* refusal) {
  Exchange& ex = exchanges_.Get(ex_idx);
  Conn& c = conns_.Get(ex.client);
  const ListenerRuntime& listener = snap_->listeners[c.owner];
  if (access_log_.enabled()) {
    // Before the policy rewrites the head: the log shows what the client sent.
    std::string_view rl = RequestLine(req, ex.req_line, sizeof(ex.req_line));
    ex.req_line_len = static_cast<uint8_t>(rl.size());
    ex.start_us = NowUs();
    for (const http::Field& f : req.fields) {
      if (http1::EqualsIgnoreCase(f.name, "traceparent")) {  // W3C trace context, logged
        ex.traceparent_len = static_cast<uint8_t>(std::min(f.value.size(), sizeof(ex.traceparent)));
        memcpy(ex.traceparent, f.value.data(), ex.traceparent_len);
        break;
      }
    }
  }
  if (req.body.framing == http::Framing::kLength && listener.max_body_bytes != 0 &&
      req.body.length > listener.max_body_bytes) {
    stats_.CountError(ErrorCause::kBodyTooLarge);
    *refusal = {413, "zproxy: request body too large\n", "body_too_large"};
    return false;
  }
  // A server-wide OPTIONS * (asterisk-form) is routed as the listener's root.
  routing::RequestView view{req.authority,
                            req.path == "*" ? std::string_view("/") : req.path,
                            req.method,
                            {},
                            req.fields};
  if (size_t q = req.path_and_query.find('?'); q != std::string_view::npos) {
    view.query = req.path_and_query.substr(q + 1);
  }
  const routing::RouteEntry* route = snap_->routes->Match(c.owner, view);
  if (route == nullptr) {
    stats_.CountError(ErrorCause::kNoRoute);
    *refusal = {404, "zproxy: no route\n", "no_route"};
    refusal->keep_alive = true;
    return false;
  }
  const routing::RoutePolicy* rp = route->policy.get();
  // Rate limits apply to every route, answering ones too (a /ping is a request like another).
  if (rp != nullptr && rp->has_rate_limit && !AllowRate(*route, c, req, refusal)) {
    refusal->keep_alive = true;  // 429 with Retry-After (limits.cc); no body to skip
    return false;
  }
  const bool new_request_id = TakeRequestId(ex, listener, req);
  if (route->action() != routing::RouteAction::kForward) {
    AnswerFromRoute(*route, req, ex, refusal);
    return false;
  }
  // The upstream request, written now: the head's views point into the input (or the
  // HTTP/2 codec's header block), which is released right after.
  const ClusterRuntime& cluster = snap_->clusters[route->cluster_index];
  char ip[INET6_ADDRSTRLEN];
  proxy::RequestPolicy policy;
  policy.host_rewrite = route->host_rewrite;
  policy.fallback_host = cluster.endpoint_names.empty()
                             ? std::string_view("localhost")
                             : std::string_view(cluster.endpoint_names[0]);
  policy.client_ip = ClientIp(c, ip, sizeof(ip));
  policy.add_forwarded = listener.add_forwarded_headers;
  // A protocol upgrade (WebSocket) goes through when it carries no body: after a 101 the
  // connection becomes a tunnel (upstream_side.cc). With a body it is sent as a plain
  // request (the upgrade dropped), so the body framing stays unambiguous.
  // Nor is an h2c Upgrade (RFC 9113 dropped it; prior knowledge is how h2c is spoken
  // here): such a request is served as HTTP/1.1, as the issue of HTTP/2 says.
  if (req.body.present() || cluster.http2 || http1::EqualsIgnoreCase(req.upgrade, "h2c")) {
    req.upgrade = {};
  }
  for (const http::Field& f : req.fields) {
    if (http1::EqualsIgnoreCase(f.name, "content-type") &&
        f.value.substr(0, 16) == "application/grpc") {
      ex.grpc = true;  // zproxy's own errors become gRPC statuses; TE: trailers upstream
    }
  }
  // Path rewrites (prefix, then regex), before anything is written.
  if (rp != nullptr && req.path != "*") {
    std::string_view target;
    proxy::RewriteResult rewritten =
        proxy::RewritePath(*rp, req.path, req.path_and_query, rewrite_buf_, &target);
    if (rewritten == proxy::RewriteResult::kRewritten) {
      req.path_and_query = target;
    } else if (rewritten != proxy::RewriteResult::kUnchanged) {
      stats_.CountError(ErrorCause::kRewriteFailed);
      *refusal = {500, "zproxy: the route's path rewrite failed\n", "rewrite_failed"};
      return false;
    }
  }
  ex.up_h2 = cluster.http2;
  ex.h2_req_body = req.body.present();
  size_t head_len = 0;
  uint32_t block = kNil;
  bool fits = proxy::ApplyRequestPolicy(policy, policy_fields_, policy_scratch_, &req);
  // Header changes: X-Request-Id first, then the route's, then the cluster's, so an
  // operator's rule has the last word.
  const routing::HeaderChanges* layers[] = {new_request_id ? &request_id_change_ : nullptr,
                                            rp != nullptr ? &rp->request_headers : nullptr,
                                            &cluster.request_headers};
  if (fits && (layers[0] != nullptr || (layers[1] != nullptr && !layers[1]->empty()) ||
               !layers[2]->empty())) {
    proxy::ScratchWriter w(change_scratch_);
    std::span<http::Field> fields = req.fields;
    fits = proxy::ApplyHeaderChanges(layers, VariablesOf(ex, ip, sizeof(ip)), &fields,
                                     change_fields_, &w);
    req.fields = fields;
  }
  if (fits) {
    // HTTP/1 upstream: the head's bytes; HTTP/2: a request block, framed when sent.
    block = WriteIntoBlock(
        [&](char* out, size_t cap) {
          return cluster.http2 ? codec::http2::EncodeRequestBlock(req, "http", ex.grpc, out, cap)
                               : codec::http1::EncodeRequestHead(req, out, cap);
        },
        &head_len);
  }
  if (block == kNil) {
    stats_.parser_rejections[static_cast<int>(http1::Error::kHeadersTooLarge)].Add();
    *refusal = {http1::ErrorHttpStatus(http1::Error::kHeadersTooLarge),
                "zproxy: bad request (headers_too_large)\n", "headers_too_large"};
    return false;
  }
  ex.up.Begin(req.method_id, !req.upgrade.empty());
  ex.cluster = clusters_.ForCluster(route->cluster_index);
  RefCluster(ex.cluster);
  ex.route = route;
  ex.snap_hold = HoldSnapshot();
  ex.method = req.method_id;
  ex.max_body = listener.max_body_bytes;
  ex.req_head_block = block;
  ex.req_head_len = static_cast<uint32_t>(head_len);
  return true;
}

void Worker::StartStream(uint32_t conn_idx, codec::http1::RequestHeadEvent& ev) {
  Conn& c = conns_.Get(conn_idx);
  http::RequestHead& req = ev.head;
  char line[sizeof(Exchange::req_line)];
  if (req.method_id == http::Method::kConnect) {
    // Never routed to a cluster: a CONNECT opens a tunnel to its own target.
    connect_.StartConnectRequest(conn_idx, ev, RequestLine(req, line, sizeof(line)));
    return;
  }
  uint32_t ex_idx = exchanges_.Alloc();
  Exchange& ex = exchanges_.Get(ex_idx);
  ex.client = conn_idx;
  Refusal refusal;
  if (!RouteRequest(ex_idx, req, &refusal)) {
    // The IDs for the log line, out of the exchange before it is freed.
    char ids[sizeof(Exchange::request_id) + sizeof(Exchange::traceparent)];
    memcpy(ids, ex.request_id, ex.request_id_len);
    memcpy(ids + ex.request_id_len, ex.traceparent, ex.traceparent_len);
    refusal.request_id = std::string_view(ids, ex.request_id_len);
    refusal.traceparent = std::string_view(ids + ex.request_id_len, ex.traceparent_len);
    exchanges_.Free(ex_idx);
    // Without a body the connection stays usable; with one, we would have to read and
    // discard it, so close instead.
    bool close = !refusal.keep_alive || req.body.present() || !ev.keep_alive || draining_;
    size_t head_bytes = ev.consumed;
    // A response to HEAD has no content (RFC 9110 §9.3.2): a body here would be read by
    // the client as the start of the next response.
    refusal.omit_body = refusal.omit_body || req.method_id == http::Method::kHead;
    SendLocalResponse(conn_idx, refusal, close, RequestLine(req, line, sizeof(line)));
    if (!close) {
      ConsumeIn(conn_idx, head_bytes);
      timers_.Arm(t_client_idle_[c.owner], conn_idx, NowMs());
    }
    return;
  }
  ex.down.Begin(ev);
  // Towards HTTP/2 the body's data goes in DATA frames: chunk framing is decoded.
  if (ex.up_h2) ex.down.request_body().Start(req.body, true);
  ex.req_done = ex.down.request_body().done();
  c.exchange = ex_idx;
  stats_.client_idle.Sub();
  ConsumeIn(conn_idx, ev.consumed);
  StartRouteTimers(ex_idx);
  StartTry(ex_idx);
  if (!AssignUpstream(ex_idx)) RespondUpstreamError(ex_idx, NoUpstreamCause(ex_idx));
}

void Worker::PumpRequestBody(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  if (ex.h2_stream != 0) {
    h2_.PumpRequestBody(ex_idx);
    return;
  }
  if (ex.up_h2) {
    h2up_.TakeH1RequestBody(ex_idx);
    return;
  }
  if (ex.req_done || ex.upstream == kNil || !ex.head_queued) return;
  uint32_t client = ex.client;
  uint32_t up = ex.upstream;
  ConnIo& io = Io(client);
  codec::http1::BodyDecoder& body = ex.down.request_body();
  while (!ex.req_done && io.in_count > 0 && OutHasRoom(up)) {
    const InSlice& s = InFront(io);
    codec::http1::BodyStep step = body.Feed(std::string_view(SliceData(s), s.len));
    if (step.status == http1::Status::kError) {
      if (!ex.resp_started) {
        // Malformed framing mid-body: the upstream already has part of the request,
        // so its connection is discarded; the client gets the 400 (logged there).
        char line[sizeof(Exchange::req_line)];
        size_t line_len = std::min<size_t>(ex.req_line_len, sizeof(line));
        memcpy(line, ex.req_line, line_len);
        ex.logged = true;
        AbortExchange(ex_idx, false);
        RejectRequest(client, step.error, std::string_view(line, line_len));
      } else {
        stats_.parser_rejections[static_cast<int>(step.error)].Add();
        AbortExchange(ex_idx, true);
      }
      return;
    }
    if (body.done()) ex.req_done = true;
    if (ex.max_body != 0 && body.data_bytes() > ex.max_body) {
      stats_.CountError(ErrorCause::kBodyTooLarge);
      if (!ex.resp_started) {
        LogExchange(ex, 413, "body_too_large");
        AbortExchange(ex_idx, false);
        SendLocalResponse(client, 413, "zproxy: request body too large\n", true);
      } else {
        AbortExchange(ex_idx, true);
      }
      return;
    }
    if (step.consumed == 0) break;
    ForwardFront(client, up, step.consumed);  // verbatim: the data is the consumed bytes
  }
  Flush(up);
  MaybeResumeRecv(client);
}

void Worker::FinishExchange(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  uint32_t client = ex.client;
  bool reusable = false;
  if (ex.h2_stream != 0) {
    // HTTP/2: the upstream goes back to its pool; the stream lives until its last frame
    // is out (H2Sessions ends it).
    if (ex.upstream != kNil) {
      Conn& u = conns_.Get(ex.upstream);
      reusable = stream::UpstreamReusable(
          Progress(ex), ex.up.keep_alive(),
          !(u.flags & kSendInflight) && OutCount(ex.upstream) == 0 && InBytes(ex.upstream) == 0);
    }
    ReleaseUpstream(ex_idx, reusable);
    h2_.EndResponse(ex_idx);  // logged when its last frame is out (the bytes are known)
    return;
  }
  if (ex.upstream != kNil) {
    Conn& u = conns_.Get(ex.upstream);
    reusable = stream::UpstreamReusable(
        Progress(ex), ex.up.keep_alive(),
        !(u.flags & kSendInflight) && OutCount(ex.upstream) == 0 && InBytes(ex.upstream) == 0);
  }
  LogExchange(ex, ex.status, {});
  ReleaseUpstream(ex_idx, reusable);
  // Close only if the response said so (it does when draining had begun by then): a
  // response that promised keep-alive is followed by the client's next request, which
  // gets Connection: close instead. Closing under it would fail that request.
  bool close = !ex.down.keep_alive() || !ex.req_done;
  bool ex_req_done = ex.req_done;
  Conn& c = conns_.Get(client);
  c.exchange = kNil;
  FreeExchange(ex_idx);
  stats_.client_idle.Add();
  if (c.flags & kClosing) return;
  if (close) {
    c.flags |= kCloseAfterSend;
    if (!ex_req_done || InBytes(client) > 0) c.flags |= kLingerNeeded;
    DropInput(client);
    tls_.Flush(client);  // TLS: close_notify after the response (plaintext: nothing)
    if (OutCount(client) == 0 && !(c.flags & kSendInflight)) {
      if (c.flags & kLingerNeeded)
        LingeringClose(client);
      else
        CloseConn(client);
    }
    return;
  }
  timers_.Arm(draining_ ? t_drain_idle_ : t_client_idle_[c.owner], client, NowMs());
  if (InBytes(client) > 0) ProcessClientInput(client);  // pipelined request
  MaybeResumeRecv(client);
  ReleaseIoIfIdle(client);
}

}  // namespace zproxy::dataplane
