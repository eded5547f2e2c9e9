// An HTTP/2 upstream connection: opened for a first exchange (others may wait on it
// while it connects), its session started once connected, bytes in and frames out
// (flushed once per batch of completions, like the client sessions), and its end.
#include <cstring>

#include "common/log.h"
#include "dataplane/h2/h2_upstreams.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {
namespace {

// Streams a connection is offered before the endpoint's SETTINGS say how many it takes
// (nghttp2 queues what exceeds the real limit until a stream ends).
constexpr uint16_t kStreamsBeforeSettings = 100;

}  // namespace

H2Upstreams::Session& H2Upstreams::Of(uint32_t up) {
  return sessions_.Get(w_.conns_.Get(up).up_h2 - 1);
}

void H2Upstreams::Opening(uint32_t up, uint32_t ex_idx) {
  Conn& u = w_.conns_.Get(up);
  uint32_t idx = sessions_.Alloc();
  Session& s = sessions_.Get(idx);
  s.owner = this;
  s.conn = up;
  u.up_h2 = idx + 1;
  // More exchanges may join while it connects.
  w_.Cs(u.owner).pool.SetMaxStreams(up, u.endpoint, kStreamsBeforeSettings);
  Link(s, ex_idx);
}

void H2Upstreams::OnConnected(uint32_t up, int res) {
  Conn& u = w_.conns_.Get(up);
  Session& s = Of(up);
  if (res < 0) {
    FailConnect(up, res == -ECONNREFUSED ? ErrorCause::kConnectRefused
                    : res == -ETIMEDOUT  ? ErrorCause::kConnectTimeout
                                         : ErrorCause::kConnectError);
    return;
  }
  codec::http2::ClientSettings settings;
  if (!s.session.Start(settings, &s)) {
    ZLOG_WARN("worker %u: HTTP/2 upstream session could not start (out of memory)",
              w_.options_.index);
    FailAll(s, ErrorCause::kConnectError, true);
    w_.CloseConn(up);
    return;
  }
  s.connected = true;
  s.last_input_ms = w_.NowMs();
  w_.ArmRecv(up);
  for (uint32_t e = s.streams; e != kNil;) {
    uint32_t next = w_.exchanges_.Get(e).up_next;  // Submit may unlink e
    Submit(s, e);
    e = next;
  }
  w_.timers_.Arm(w_.Cs(u.owner).t_read, up, w_.NowMs());
  // Bytes that came with the end of a TLS handshake (the server's SETTINGS).
  if (u.io != kNil && w_.ios_.Get(u.io).in_count > 0) OnInput(up);
  Wake(up);
}

void H2Upstreams::FailConnect(uint32_t up, ErrorCause cause) {
  FailAll(Of(up), cause, true);
  w_.CloseConn(up);
}

void H2Upstreams::OnTick() {
  uint32_t now = w_.NowMs();
  for (uint32_t i = 0; i < sessions_.capacity(); i++) {
    Session& s = sessions_.Get(i);
    if (s.owner == nullptr || !s.connected || s.count != 0) continue;
    Conn& u = w_.conns_.Get(s.conn);
    if (u.up_h2 != i + 1 || (u.flags & kClosing) || !(u.flags & kPooled)) continue;
    const ClusterRuntime& cfg = *w_.Cs(u.owner).cfg;
    if (s.ping_sent_ms != 0) {
      if (now - s.ping_sent_ms > cfg.read_timeout_ms) {
        w_.stats_.CountError(ErrorCause::kReadTimeout);
        w_.CloseConn(s.conn);  // no PING ACK: presumed dead, nothing was on it
      }
      continue;
    }
    uint32_t every = std::min<uint32_t>(10000, cfg.idle_timeout_ms / 2);
    if (now - s.last_input_ms >= every && s.session.Ping()) {
      s.ping_sent_ms = now == 0 ? 1 : now;
      Wake(s.conn);
    }
  }
}

void H2Upstreams::OnInput(uint32_t up) {
  ConnIo& io = w_.Io(up);
  Conn& u = w_.conns_.Get(up);
  Of(up).last_input_ms = w_.NowMs();
  Of(up).ping_sent_ms = 0;  // any bytes (the PING ACK among them) prove it alive
  if (Of(up).count != 0) w_.timers_.Arm(w_.Cs(u.owner).t_read, up, w_.NowMs());
  while (io.in_count > 0) {
    InSlice slice = w_.InFront(io);
    feeding_ = &slice;
    Session& s = Of(up);
    s.flushing = true;  // nghttp2 is not re-entered from its own callbacks
    bool ok = s.session.Receive(std::string_view(w_.SliceData(slice), slice.len));
    s.flushing = false;
    feeding_ = nullptr;
    w_.ReleaseSlice(slice);
    w_.InPopFront(io);
    if (w_.conns_.Get(up).flags & kClosing) return;
    if (!ok) {
      // The upstream broke the protocol: its streams fail, the connection closes.
      w_.stats_.CountError(ErrorCause::kBadResponse);
      Fail(up, ErrorCause::kBadResponse);
      return;
    }
  }
  Wake(up);
}

void H2Upstreams::Wake(uint32_t up) {
  Conn& u = w_.conns_.Get(up);
  if (u.up_h2 == 0 || (u.flags & kClosing)) return;
  Session& s = Of(up);
  if (s.flushing) {
    s.again = true;
    return;
  }
  if (s.scheduled || !s.connected) return;
  s.scheduled = true;
  pending_.emplace_back(up, u.gen);
}

void H2Upstreams::FlushPending() {
  for (size_t i = 0; i < pending_.size(); i++) {
    auto [up, gen] = pending_[i];
    Conn& u = w_.conns_.Get(up);
    if (u.gen != gen || u.up_h2 == 0 || (u.flags & kClosing)) continue;
    Of(up).scheduled = false;
    Flush(up);
  }
  pending_.clear();
}

void H2Upstreams::Flush(uint32_t up) {
  Session& s = Of(up);
  if (s.flushing) {
    s.again = true;
    return;
  }
  s.flushing = true;
  bool fatal = false;
  do {
    s.again = false;
    if (!s.session.Send()) fatal = true;
    w_.h2_.QueueGathered(s.conn, s.out);
  } while (s.again && !fatal);
  s.flushing = false;
  w_.Flush(up);
  if (fatal) {
    Fail(up, ErrorCause::kUpstreamClosed);
    return;
  }
  // A draining connection closes once its last stream ended.
  if (s.draining && s.count == 0 && w_.OutCount(up) == 0) w_.CloseConn(up);
}

void H2Upstreams::OnTimeout(uint32_t up) {
  Conn& u = w_.conns_.Get(up);
  Session& s = Of(up);
  if (u.flags & kPooled) {
    w_.CloseConn(up);  // idle for the cluster's idle_timeout_ms
    return;
  }
  if (!s.connected) {
    FailAll(s, ErrorCause::kConnectTimeout, true);
    w_.CloseConn(up);
    return;
  }
  if (s.count == 0) return;
  // No byte from the upstream for read_timeout_ms while streams wait: all of them time
  // out (the connection is presumed dead).
  FailAll(s, stream::TimeoutCause(false), false);
  w_.CloseConn(up);
}

void H2Upstreams::Fail(uint32_t up, ErrorCause cause) {
  FailAll(Of(up), cause, false);
  w_.CloseConn(up);
}

void H2Upstreams::FailAll(Session& s, ErrorCause cause, bool retry) {
  // Off the pool first: a retry must not pick this connection again.
  Conn& u = w_.conns_.Get(s.conn);
  w_.Cs(u.owner).pool.Remove(s.conn, u.endpoint);
  s.draining = true;
  while (s.streams != kNil) {
    uint32_t e = s.streams;
    Exchange& ex = w_.exchanges_.Get(e);
    // A request not sent yet (waiting for the connect) may go to another endpoint, and
    // so may one without a body that got no answer on a reused connection (the upstream
    // may have closed it as the request went out), once, as over HTTP/1.
    bool stale = (u.flags & kReused) && ex.up_stream > 0 && !ex.resp_started && !ex.h2_req_body &&
                 !ex.retried_stale;
    bool may_retry = retry || ex.up_stream == 0;
    Unlink(s, e);
    ex.upstream = kNil;
    if (stale) {
      ex.retried_stale = true;
      if (Resubmit(e)) continue;
    }
    w_.UpstreamFailed(e, cause, may_retry);
  }
}

bool H2Upstreams::Resubmit(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.lb_counted) {
    w_.Cs(ex.cluster).lb->OnConnectionClosed(ex.endpoint);
    ex.lb_counted = false;
  }
  ex.up_stream = 0;
  ex.head_queued = false;
  w_.stats_.upstream_retries.Add();
  return w_.AssignUpstream(ex_idx);
}

void H2Upstreams::Teardown(uint32_t up) {
  Conn& u = w_.conns_.Get(up);
  if (u.up_h2 == 0) return;
  Session& s = Of(up);
  if (s.streams != kNil) FailAll(s, ErrorCause::kUpstreamClosed, false);
  w_.h2_.DropGathered(s.out);
  s.session.Close();
  s.owner = nullptr;  // not live (OnTick walks the pool)
  sessions_.Free(u.up_h2 - 1);
  u.up_h2 = 0;
}

// --- The codec's handler: header space and the output queue.

codec::http2::HeaderSpace H2Upstreams::Session::AcquireHeaderSpace() {
  return owner->w_.h2_.LendHeaderSpace();
}

void H2Upstreams::Session::ReleaseHeaderSpace(codec::http2::HeaderSpace space) {
  owner->w_.h2_.TakeBackHeaderSpace(space);
}

bool H2Upstreams::Session::WriteFrames(std::string_view bytes) {
  return owner->w_.h2_.GatherFrames(conn, out, bytes);
}

void H2Upstreams::Session::OnGoaway(uint32_t error_code) {
  // No new streams here; those above the last stream id come back refused (and are
  // retried elsewhere); the others finish.
  Worker& w = owner->w_;
  Conn& u = w.conns_.Get(conn);
  w.Cs(u.owner).pool.Remove(conn, u.endpoint);
  draining = true;
  if (error_code != 0) {
    ZLOG_WARN("worker %u: upstream %s sent GOAWAY (error %u)", w.options_.index,
              w.Cs(u.owner).cfg->endpoint_names[u.endpoint].c_str(), error_code);
  }
}

void H2Upstreams::Session::OnSettings() {
  Worker& w = owner->w_;
  Conn& u = w.conns_.Get(conn);
  if (draining) return;
  uint32_t max = session.MaxConcurrentStreams();
  w.Cs(u.owner).pool.SetMaxStreams(conn, u.endpoint,
                                   static_cast<uint16_t>(std::min<uint32_t>(max, 1000)));
}

}  // namespace zproxy::dataplane
