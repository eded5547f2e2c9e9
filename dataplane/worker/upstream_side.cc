// Upstream side of the data path: endpoint selection, connecting (with one retry on
// another endpoint), the per-worker keep-alive pool, and response parsing/streaming.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

#ifndef TCP_FASTOPEN_CONNECT
#define TCP_FASTOPEN_CONNECT 30
#endif

namespace {

// "1.2.3.4:80" / "[::1]:80" into buf, for a log line (no allocation on the error path).
void FormatAddress(const ConnIo::ConnectAddress& a, char* buf, size_t cap) {
  char ip[INET6_ADDRSTRLEN];
  if (a.v4.sin_family == AF_INET && inet_ntop(AF_INET, &a.v4.sin_addr, ip, sizeof(ip)) != nullptr) {
    snprintf(buf, cap, "%s:%u", ip, ntohs(a.v4.sin_port));
  } else if (a.v6.sin6_family == AF_INET6 &&
             inet_ntop(AF_INET6, &a.v6.sin6_addr, ip, sizeof(ip)) != nullptr) {
    snprintf(buf, cap, "[%s]:%u", ip, ntohs(a.v6.sin6_port));
  }
}

}  // namespace

stream::StreamProgress Worker::Progress(const Exchange& ex) const {
  stream::StreamProgress p;
  p.tunnel = ex.tunnel.active;
  p.head_sent = ex.head_queued;
  p.head_available = ex.req_head_block != kNil;
  p.request_done = ex.req_done;
  p.response_started = ex.resp_started;
  p.phase = ex.resp;
  p.reused_connection = ex.upstream != kNil && (conns_.Get(ex.upstream).flags & kReused);
  p.retried_stale = ex.retried_stale;
  p.attempts = ex.attempts;
  p.client_keep_alive = ex.down.keep_alive();
  p.draining = draining_;
  return p;
}

bool Worker::AssignUpstream(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  if (Cs(ex.cluster).cfg->original_destination) return ConnectOriginalDst(ex_idx);
  upstream::EndpointSet& lb = *Cs(ex.cluster).lb;
  uint32_t endpoint =
      lb.Pick(ex.failed_endpoint == kNil ? upstream::EndpointSet::kNone : ex.failed_endpoint);
  if (endpoint == upstream::EndpointSet::kNone && ex.policy_retries > 0) {
    endpoint = lb.Pick(upstream::EndpointSet::kNone);  // a retry may go to the same one
  }
  if (endpoint == upstream::EndpointSet::kNone) return false;
  if (lb.last_pick_panicked()) stats_.upstream_panic.Add();
  ex.endpoint = endpoint;
  lb.OnConnectionOpened(endpoint);
  ex.lb_counted = true;
  // Tunnels never share upstream connections with HTTP (or with each other).
  uint32_t up = ex.tunnel.active ? kNil : AcquireUpstream(ex.cluster, endpoint);
  if (up != kNil) {
    stats_.upstream_reused.Add();
    AttachUpstream(ex_idx, up);
  } else {
    StartConnect(ex_idx, endpoint);
  }
  return true;
}

void Worker::StartConnect(uint32_t ex_idx, uint32_t endpoint) {
  const Exchange& ex = exchanges_.Get(ex_idx);
  ConnectTo(ex_idx, endpoint, Cs(ex.cluster).lb->address(endpoint));
}

void Worker::ConnectTo(uint32_t ex_idx, uint32_t endpoint, const NetAddress& addr,
                       uint32_t deadline_ms) {
  Exchange& ex = exchanges_.Get(ex_idx);
  const ClusterRuntime& cluster = *Cs(ex.cluster).cfg;
  // Only IPv4 and IPv6 fit the connection's copy of the address (ConnIo::connect_to).
  bool fits = addr.len <= sizeof(ConnIo::connect_to);
  int fd = fits ? socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
  if (fd < 0) {
    int err = fits ? errno : EAFNOSUPPORT;
    uint32_t more_since = 0;
    if (socket_log_.Allow(NowMs(), &more_since)) {
      ZLOG_WARN("worker %u: socket(): %s (%u more since the last line)", options_.index,
                strerror(err), more_since);
    }
    stats_.CountConnectErrno(err);
    UpstreamFailed(ex_idx, ErrorCause::kConnectError, true);
    return;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  // A bounded receive buffer (no autotuning up to 6 MiB): what an upstream can have
  // queued when backpressure pauses its receive is what the multishot receive drains
  // before the pause lands. 256 KiB (the kernel doubles it) still fills a 10 Gbit/s
  // link at 200 us RTT, which covers upstreams in the same data centre.
  int rcvbuf = 256 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (cluster.tcp_fast_open) {
    // The connect completes at once and the request head rides in the SYN when the
    // kernel has a cookie for the endpoint.
    setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one));
  }
  uint32_t up = NewConn(ConnKind::kUpstream, fd, ex.cluster);
  Conn& u = conns_.Get(up);
  u.endpoint = endpoint;
  // Until the slot is freed (MaybeFreeConn): the slot keeps its destination meanwhile.
  if (cluster.original_destination) Cs(ex.cluster).dst_slots.Opened(endpoint);
  // HTTP/1: one stream (this exchange) at a time. Tunnels and CONNECT never come back.
  Cs(ex.cluster).pool.Opened(up, endpoint, 1);
  if (cluster.http2) {
    h2up_.Opening(up, ex_idx);  // a session; other exchanges may wait on it too
  } else {
    u.exchange = ex_idx;
  }
  u.flags |= kConnecting;
  ex.upstream = up;
  stats_.upstream_connects.Add();
  // The kernel reads the address at submit time: it must outlive `addr` (see connect_to).
  ConnIo& up_io = Io(up);
  memcpy(&up_io.connect_to, addr.sa(), addr.len);
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(&up_io.connect_to), addr.len);
  io_uring_sqe_set_data64(sqe, Ud(io::Op::kConnect, up));
  u.inflight++;
  if (deadline_ms != 0) {
    timers_.ArmAt(Cs(ex.cluster).t_connect, up, deadline_ms);
  } else {
    timers_.Arm(Cs(ex.cluster).t_connect, up, NowMs());
  }
}

void Worker::OnConnect(uint32_t conn_idx, int res) {
  Conn& u = conns_.Get(conn_idx);
  u.inflight--;
  u.flags &= ~kConnecting;
  if (u.flags & kClosing) {
    MaybeFreeConn(conn_idx);
    return;
  }
  timers_.Disarm(conn_idx);
  if (res < 0) NoteConnectFailure(conn_idx, -res);  // reads the address kept in the ConnIo
  ReleaseConnectIo(conn_idx);
  if (u.up_h2 != 0) {
    if (res >= 0 && Cs(u.owner).cfg->tls != nullptr) {
      ArmRecv(conn_idx);
      tls_.Connect(conn_idx);  // h2 by ALPN; the session starts once it is done
      return;
    }
    h2up_.OnConnected(conn_idx, res);
    return;
  }
  uint32_t ex_idx = u.exchange;
  if (res < 0) {
    ErrorCause cause = res == -ECONNREFUSED ? ErrorCause::kConnectRefused
                       : res == -ETIMEDOUT  ? ErrorCause::kConnectTimeout
                                            : ErrorCause::kConnectError;
    if (ex_idx == kNil) {
      CloseConn(conn_idx);
    } else {
      UpstreamFailed(ex_idx, cause, true);
    }
    return;
  }
  if (ex_idx == kNil) {
    CloseConn(conn_idx);
    return;
  }
  Exchange& ex = exchanges_.Get(ex_idx);
  bool tls_upstream = Cs(u.owner).cfg->tls != nullptr;
  // TLS towards the upstream: the bytes must pass through BoringSSL, so a tunnel copies.
  if (tls_upstream) tunnels_.OnTlsUpstream(ex_idx);
  // sockmap/splice tunnels never read through the ring (StartPassthrough decides).
  if (!ex.tunnel.active || ex.tunnel.pass_mode == static_cast<uint8_t>(PassMode::kCopy)) {
    ArmRecv(conn_idx);
  }
  if (tls_upstream) {
    // HTTPS upstream: the request waits for the handshake (the TLS layer attaches it).
    tls_.Connect(conn_idx);
    return;
  }
  u.exchange = kNil;  // AttachUpstream links both ways
  AttachUpstream(ex_idx, conn_idx);
}

void Worker::NoteConnectFailure(uint32_t conn_idx, int err) {
  stats_.CountConnectErrno(err);
  uint32_t more_since = 0;
  if (!connect_log_.Allow(NowMs(), &more_since)) return;
  const Conn& u = conns_.Get(conn_idx);
  // The address the connect was submitted with (a CONNECT's target is in no config).
  char where[INET6_ADDRSTRLEN + 8] = "?";
  if (u.io != kNil) FormatAddress(ios_.Get(u.io).connect_to, where, sizeof(where));
  ZLOG_WARN("worker %u: connect to %s (cluster %s): %s (%s; %u more since the last line)",
            options_.index, where, Cs(u.owner).cfg->name.c_str(), strerror(err),
            ConnectErrnoName(ConnectErrnoOf(err)), more_since);
}

void Worker::AttachUpstream(uint32_t ex_idx, uint32_t up_idx) {
  if (conns_.Get(up_idx).up_h2 != 0) {
    h2up_.Attach(ex_idx, up_idx);  // a stream on a shared connection
    return;
  }
  Exchange& ex = exchanges_.Get(ex_idx);
  Conn& u = conns_.Get(up_idx);
  u.exchange = ex_idx;
  ex.upstream = up_idx;
  if (ex.connect) {
    connect_.EstablishConnectTunnel(ex_idx);
    return;
  }
  if (ex.tunnel.active) {
    ex.head_queued = true;
    if (ex.tunnel.pass_mode != static_cast<uint8_t>(PassMode::kCopy)) {
      tunnels_.StartPassthrough(ex_idx);
      return;
    }
    tunnels_.Pump(ex_idx, true);  // bytes the client sent while we were connecting
    return;
  }
  // Keep the head only while a retry is still possible: a reused keep-alive connection
  // may turn out to be closed by the upstream before it reads the request, and a route's
  // retry policy may send it again.
  bool has_body =
      ex.h2_stream != 0 ? ex.h2_req_body : ex.down.request_body().framing() != http::Framing::kNone;
  const routing::RoutePolicy* rp = ex.route != nullptr ? ex.route->policy.get() : nullptr;
  bool policy_may_retry =
      rp != nullptr && rp->has_retry && ex.policy_retries < rp->retry.num_retries;
  bool keep_for_retry =
      !has_body && (((u.flags & kReused) && !ex.retried_stale) || policy_may_retry);
  if (keep_for_retry) {
    uint32_t copy = blocks_.Alloc(ex.req_head_len);
    memcpy(blocks_.Data(copy), blocks_.Data(ex.req_head_block), ex.req_head_len);
    QueueOut(up_idx, blocks_.Data(copy), ex.req_head_len, ItemOwner::kBlock, copy);
  } else {
    QueueOut(up_idx, blocks_.Data(ex.req_head_block), ex.req_head_len, ItemOwner::kBlock,
             ex.req_head_block);
    ex.req_head_block = kNil;
  }
  ex.head_queued = true;
  timers_.Arm(Cs(ex.cluster).t_read, up_idx, NowMs());
  PumpRequestBody(ex_idx);
  Flush(up_idx);
  MaybeResumeRecv(ex.client);
}

void Worker::RespondUpstreamError(uint32_t ex_idx, ErrorCause cause) {
  Exchange& ex = exchanges_.Get(ex_idx);
  stats_.CountError(cause);
  if (ex.connect && !ex.tunnel.active) connect_.CountConnectFailure(cause);
  stream::Decision d = stream::ReplyToFailure(Progress(ex), cause);
  if (ex.h2_stream != 0) {
    h2_.RespondError(ex_idx, d, cause);
    return;
  }
  if (d.next == stream::Next::kAbort) {
    AbortExchange(ex_idx, true);  // a tunnel, or a response already under way
    return;
  }
  bool close = d.close_client;
  uint32_t client = ex.client;
  // A CONNECT to a name says which name and how many of its addresses were tried.
  char name_body[kMaxHostName + 160];
  std::string_view body =
      ex.target != kNil ? connect_.ConnectNameErrorBody(ex, cause, name_body, sizeof(name_body))
                        : stream::ErrorBody(cause);
  if (access_log_.enabled()) {
    // Error path only: size the response the client is about to get, for the log.
    char tmp[768];
    ex.resp_bytes = codec::http1::EncodeLocalResponse(d.status, body, close, tmp, sizeof(tmp));
    LogExchange(ex, d.status, ErrorCauseName(cause));
  }
  // A response to HEAD has no content (RFC 9110 §9.3.2): a body would be read by a
  // keep-alive client as the start of the next response.
  Refusal r;
  r.status = d.status;
  r.body = body;
  r.omit_body = ex.method == http::Method::kHead;
  AbortExchange(ex_idx, false);
  SendLocalResponse(client, r, close, {});
  if (!close) {
    Conn& c = conns_.Get(client);
    timers_.Arm(t_client_idle_[c.owner], client, NowMs());
    if (InBytes(client) > 0) ProcessClientInput(client);
  }
}

void Worker::UpstreamFailed(uint32_t ex_idx, ErrorCause cause, bool may_retry) {
  Exchange& ex = exchanges_.Get(ex_idx);
  if (ex.endpoint != kNil) RecordUpstreamResult(ex.cluster, ex.endpoint, false);
  CloseUpstreamOf(ex_idx);
  if (ex.lb_counted) {
    Cs(ex.cluster).lb->OnConnectionClosed(ex.endpoint);
    ex.lb_counted = false;
  }
  // CONNECT to a name: the next of its addresses, while there is time.
  if (may_retry && ex.target != kNil && connect_.ConnectTryNext(ex_idx, cause)) return;
  // The route's retry policy (a read timeout is not retried: per_try_timeout_ms is how a
  // route bounds a try).
  if (cause != ErrorCause::kReadTimeout && !ex.connect) {
    stream::RetryTrigger trigger = may_retry ? stream::RetryTrigger::kConnectFailure
                                   : cause == ErrorCause::kPerTryTimeout
                                       ? stream::RetryTrigger::kPerTryTimeout
                                       : stream::RetryTrigger::kReset;
    if (TryPolicyRetry(ex_idx, trigger)) {
      stats_.CountError(cause);
      return;
    }
  }
  if (stream::AfterUpstreamFailure(Progress(ex), cause, may_retry).next ==
      stream::Next::kRetryOtherEndpoint) {
    ex.attempts = 1;
    ex.failed_endpoint = ex.endpoint;
    stats_.upstream_retries.Add();
    stats_.CountError(cause);
    if (AssignUpstream(ex_idx)) return;
    stats_.errors[static_cast<int>(cause)].Sub();  // counted once below
  }
  RespondUpstreamError(ex_idx, cause);
}

void Worker::CloseUpstreamOf(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  if (ex.upstream == kNil) return;
  if (ex.up_h2) {
    h2up_.Release(ex_idx, true);
    return;
  }
  Conn& u = conns_.Get(ex.upstream);
  u.exchange = kNil;
  CloseConn(ex.upstream);
  ex.upstream = kNil;
}

void Worker::ProcessUpstreamInput(uint32_t conn_idx) {
  Conn& u = conns_.Get(conn_idx);
  if (u.up_h2 != 0) {
    h2up_.OnInput(conn_idx);
    return;
  }
  if (u.exchange == kNil) {
    // Bytes on an idle keep-alive connection: the upstream broke protocol. Drop it.
    CloseConn(conn_idx);
    return;
  }
  uint32_t ex_idx = u.exchange;
  if (exchanges_.Get(ex_idx).tunnel.active) {
    tunnels_.Pump(ex_idx, false);
    return;
  }
  timers_.Arm(Cs(u.owner).t_read, conn_idx, NowMs());
  while (true) {
    Exchange& ex = exchanges_.Get(ex_idx);
    if (ex.resp == RespState::kBody) {
      PumpResponseBody(ex_idx);
      return;
    }
    if (ex.resp != RespState::kWaitHead) return;
    ConnIo& io = Io(conn_idx);
    if (io.in_count == 0) return;
    // A head (a 1xx, or the final one) goes to the client's queue only with room in it;
    // the client's send completion comes back here (output_queue.cc).
    if (ex.h2_stream == 0 && !OutHasRoom(ex.client)) return;
    const InSlice& front = InFront(io);
    size_t consumed = 0;
    if (!ParseResponseHead(ex_idx, std::string_view(SliceData(front), front.len), &consumed)) {
      if (io.in_count > 1) {
        CoalesceInput(conn_idx);
        continue;
      }
      if (front.is_block && front.len >= blocks_.large_size()) {
        UpstreamFailed(ex_idx, ErrorCause::kBadResponse, false);
      }
      return;
    }
    if (consumed == 0) return;  // exchange failed and was torn down
    ConsumeIn(conn_idx, consumed);
    if (exchanges_.Get(ex_idx).tunnel.active) {
      stats_.websocket_upgrades.Add();
      tunnels_.StartUpgraded(ex_idx);
      return;
    }
    if (exchanges_.Get(ex_idx).resp == RespState::kDone) {
      FinishExchange(ex_idx);
      return;
    }
  }
}

// Decodes a response head from the upstream's front input. Returns false if incomplete;
// on success sets *consumed to the head size (0 if the exchange was torn down).
bool Worker::ParseResponseHead(uint32_t ex_idx, std::string_view data, size_t* consumed) {
  Exchange& ex = exchanges_.Get(ex_idx);
  http1::Limits limits;
  limits.max_header_bytes = blocks_.large_size() - 4096;
  limits.max_headers = 128;
  codec::http1::ResponseHeadEvent ev;
  http1::Error err = http1::Error::kNone;
  http1::Status st = ex.up.DecodeResponseHead(data, limits, header_storage_, &ev, &err);
  if (st == http1::Status::kNeedMore) return false;
  if (st == http1::Status::kError) {
    // Malformed, or a 101 to a request that asked for no upgrade.
    UpstreamFailed(ex_idx, ErrorCause::kBadResponse, false);
    *consumed = 0;
    return true;
  }
  http::ResponseHead& resp = ev.head;
  if (resp.status == 101) {
    // Switching Protocols (WebSocket): forward the 101, then both connections carry opaque
    // bytes. The tunnel starts in ProcessUpstreamInput once the head is consumed.
    size_t len = 0;
    uint32_t b = WriteIntoBlock(
        [&](char* out, size_t cap) {
          return codec::http1::ServerStream::EncodeInterim(resp, out, cap);
        },
        &len);
    if (b == kNil) {
      UpstreamFailed(ex_idx, ErrorCause::kBadResponse, false);
      *consumed = 0;
      return true;
    }
    RecordUpstreamResult(ex.cluster, ex.endpoint, true);
    QueueOut(ex.client, blocks_.Data(b), static_cast<uint32_t>(len), ItemOwner::kBlock, b);
    stats_.CountStatus(101);
    ex.status = 101;
    ex.resp_bytes += len;
    LogExchange(ex, 101, "upgrade");
    ex.resp_started = true;
    ex.resp = RespState::kDone;
    ex.tunnel.active = true;
    *consumed = ev.consumed;
    return true;
  }
  uint32_t client = ex.client;
  if (resp.interim()) {
    // 1xx are forwarded as they come (100-continue, 103 early hints), to clients that
    // can take them; a few per request: an upstream sending them without end (each one
    // re-arms the read timeout) is broken, and answered 502.
    if (++ex.interims > kMaxInterimResponses) {
      UpstreamFailed(ex_idx, ErrorCause::kBadResponse, false);
      *consumed = 0;
      return true;
    }
    if (ex.h2_stream != 0) {
      h2_.SendInterim(ex_idx, resp);
    } else if (ex.down.TakesInterim()) {
      size_t len = 0;
      uint32_t b = WriteIntoBlock(
          [&](char* out, size_t cap) {
            return codec::http1::ServerStream::EncodeInterim(resp, out, cap);
          },
          &len);
      if (b != kNil) {
        QueueOut(client, blocks_.Data(b), static_cast<uint32_t>(len), ItemOwner::kBlock, b);
      }
      Flush(client);
    }
    *consumed = ev.consumed;
    return true;
  }
  RecordUpstreamResult(ex.cluster, ex.endpoint, resp.status < 500);
  if (RetryOnStatus(ex_idx, resp.status)) {
    *consumed = 0;  // the upstream connection was closed with what it sent
    return true;
  }
  ex.status = resp.status;
  EndRouteTimers(ex_idx);
  ApplyResponseChanges(ex, resp);
  if (ex.h2_stream != 0) {
    // HTTP/2 frames the body itself: chunked bodies are decoded to their data.
    ex.up.StartResponseBody(ev, true);
    ex.resp_started = true;
    stats_.CountStatus(resp.status);
    bool done = ex.up.response_body().done();
    ex.resp = done ? RespState::kDone : RespState::kBody;
    *consumed = ev.consumed;
    h2_.SendResponseHead(ex_idx, resp, !done);
    return true;
  }
  // The client's connection ends after this response when the request was not read to
  // its end or zproxy is draining; the codec adds its own reasons.
  bool close_client = stream::CloseClientAfterResponse(Progress(ex));
  size_t len = 0;
  uint32_t b = WriteIntoBlock(
      [&](char* out, size_t cap) {
        return ex.down.EncodeResponseHead(resp, close_client, out, cap);
      },
      &len);
  if (b == kNil) {
    UpstreamFailed(ex_idx, ErrorCause::kBadResponse, false);
    *consumed = 0;
    return true;
  }
  ex.up.StartResponseBody(ev, ex.down.decode_response_body());
  QueueOut(client, blocks_.Data(b), static_cast<uint32_t>(len), ItemOwner::kBlock, b);
  ex.resp_bytes += len;
  ex.resp_started = true;
  stats_.CountStatus(resp.status);
  ex.resp = ex.up.response_body().done() ? RespState::kDone : RespState::kBody;
  *consumed = ev.consumed;
  if (ex.resp == RespState::kDone) Flush(client);
  return true;
}

void Worker::PumpResponseBody(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  uint32_t up = ex.upstream;
  uint32_t client = ex.client;
  if (up == kNil) return;
  ConnIo& io = Io(up);
  codec::http1::BodyDecoder& body = ex.up.response_body();
  bool h2 = ex.h2_stream != 0;
  while (ex.resp == RespState::kBody && io.in_count > 0 &&
         (h2 ? h2_.ResponseHasRoom(exchanges_.Get(ex_idx)) : OutHasRoom(client))) {
    const InSlice& s = InFront(io);
    codec::http1::BodyStep step = body.Feed(std::string_view(SliceData(s), s.len));
    if (step.status == http1::Status::kError) {
      stats_.CountError(ErrorCause::kBadResponse);
      AbortExchange(ex_idx, true);
      return;
    }
    if (body.done()) ex.resp = RespState::kDone;
    if (h2) {
      h2_.PushResponseData(ex_idx, s, step.data);
      if (!step.trailer.empty()) h2_.AddTrailerLines(ex_idx, step.trailer);
      ConsumeIn(up, step.consumed);
    } else if (body.decoding()) {
      // Chunk data only (an HTTP/1.0 client): the framing is consumed, not forwarded.
      if (!step.data.empty()) QueueFromSlice(client, s, step.data);
      ex.resp_bytes += step.data.size();
      ConsumeIn(up, step.consumed);
    } else if (step.consumed > 0) {
      ForwardFront(up, client, step.consumed);
      ex.resp_bytes += step.consumed;
    }
    if (step.consumed == 0) break;
  }
  if (ex.resp == RespState::kBody && ex.upstream_eof && io.in_count == 0 && body.EndsAtClose()) {
    body.FinishAtClose();
    ex.resp = RespState::kDone;
  }
  Flush(client);
  MaybeResumeRecv(up);
  if (ex.resp == RespState::kDone) {
    FinishExchange(ex_idx);
  } else if (ex.upstream_eof && io.in_count == 0) {
    // The upstream closed before the body was complete.
    stats_.CountError(ErrorCause::kUpstreamClosed);
    AbortExchange(ex_idx, true);
  }
}

void Worker::OnUpstreamEof(uint32_t conn_idx, int err) {
  Conn& u = conns_.Get(conn_idx);
  if (u.up_h2 != 0) {
    h2up_.Fail(conn_idx, ErrorCause::kUpstreamClosed);  // its streams fail over or answer
    return;
  }
  if (u.exchange == kNil) {
    CloseConn(conn_idx);  // pooled connection closed by the upstream
    return;
  }
  uint32_t ex_idx = u.exchange;
  Exchange& ex = exchanges_.Get(ex_idx);
  if (ex.tunnel.active) {
    tunnels_.OnUpstreamEof(ex_idx, err);
    return;
  }
  stream::Decision d = stream::AfterUpstreamClosed(
      Progress(ex), err<0, ex.up.response_body().EndsAtClose(), InBytes(conn_idx)> 0);
  switch (d.next) {
    case stream::Next::kAbortWithReset:
      stats_.CountError(ErrorCause::kUpstreamClosed);
      AbortExchange(ex_idx, true);  // a cut close-delimited body makes the client's a reset
      return;
    case stream::Next::kEndOfInput:
      // What is buffered still goes out; the body's framing says whether it was complete.
      ex.upstream_eof = true;
      PumpResponseBody(ex_idx);
      return;
    case stream::Next::kRetryFreshConnection:
      ex.retried_stale = true;
      u.exchange = kNil;
      CloseConn(conn_idx);
      ex.upstream = kNil;
      ex.head_queued = false;
      stats_.upstream_retries.Add();
      // An original destination has no endpoint: a new connection to the client's.
      if (Cs(ex.cluster).cfg->original_destination) {
        if (!ConnectOriginalDst(ex_idx, true))
          RespondUpstreamError(ex_idx, NoUpstreamCause(ex_idx));
      } else {
        StartConnect(ex_idx, ex.endpoint);
      }
      return;
    case stream::Next::kRetryOtherEndpoint:
    case stream::Next::kReplyError:
    case stream::Next::kAbort:
      // A failure of this attempt: counted against the endpoint, answered or cut there.
      UpstreamFailed(ex_idx, ErrorCause::kUpstreamClosed, false);
      return;
  }
}

void Worker::ReleaseUpstream(uint32_t ex_idx, bool reusable) {
  Exchange& ex = exchanges_.Get(ex_idx);
  if (ex.lb_counted) {
    Cs(ex.cluster).lb->OnConnectionClosed(ex.endpoint);
    ex.lb_counted = false;
  }
  uint32_t up = ex.upstream;
  if (up == kNil) return;
  if (ex.up_h2) {
    h2up_.Release(ex_idx, false);  // the stream ended; the connection serves others
    return;
  }
  ex.upstream = kNil;
  Conn& u = conns_.Get(up);
  u.exchange = kNil;
  timers_.Disarm(up);
  ClusterState& cs = Cs(u.owner);
  // A paused receive means unread bytes behind the response: the framing is not intact.
  // An original-destination connection is kept in its destination's slot; one opened when
  // every slot held another destination's has none, and is closed.
  bool keep = reusable && !draining_ && !cs.retired && !(u.flags & kRecvPaused) &&
              (!cs.cfg->original_destination || cs.dst_slots.Pooled(u.endpoint));
  switch (cs.pool.Release(up, u.endpoint, keep, cs.cfg->pool_size)) {
    case upstream::Released::kClose:
      CloseConn(up);
      return;
    case upstream::Released::kIdle:
      u.flags |= kPooled | kReused;
      stats_.upstream_idle.Add();
      timers_.Arm(cs.t_pool, up, NowMs());
      ReleaseIoIfIdle(up);
      return;
    case upstream::Released::kBusy:  // other streams still use it (multiplexed protocols)
      return;
  }
}

uint32_t Worker::AcquireUpstream(uint16_t cluster, uint32_t endpoint) {
  uint32_t up = Cs(cluster).pool.Acquire(endpoint);
  if (up == upstream::kNoConn) return kNil;
  Conn& u = conns_.Get(up);
  if (u.flags & kPooled) {  // it was idle: its pool timeout no longer applies
    u.flags &= ~kPooled;
    stats_.upstream_idle.Sub();
    timers_.Disarm(up);
  }
  return up;
}

}  // namespace zproxy::dataplane
