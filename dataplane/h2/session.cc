// An HTTP/2 client connection's session: started by the preface or ALPN, fed with the
// received bytes, flushed into the connection's output queue, ended by GOAWAY, a
// timeout or the connection's close.
#include <cstring>

#include "common/log.h"
#include "dataplane/h2/h2_sessions.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {
namespace {

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

}  // namespace

int H2Sessions::MatchPreface(std::string_view data) {
  size_t n = std::min(data.size(), kPreface.size());
  if (data.substr(0, n) != kPreface.substr(0, n)) return 0;
  return n == kPreface.size() ? 1 : -1;
}

H2Sessions::Session& H2Sessions::Of(uint32_t conn_idx) {
  return sessions_.Get(w_.conns_.Get(conn_idx).h2 - 1);
}

bool H2Sessions::Start(uint32_t conn_idx) {
  Conn& c = w_.conns_.Get(conn_idx);
  const ListenerRuntime& listener = w_.snap_->listeners[c.owner];
  uint32_t idx = sessions_.Alloc();
  Session& s = sessions_.Get(idx);
  s.owner = this;
  s.conn = conn_idx;
  codec::http2::ServerSettings settings;
  settings.max_header_bytes = listener.limits.max_header_bytes;
  settings.max_fields = listener.limits.max_headers;
  settings.max_concurrent_streams = listener.h2_max_concurrent_streams;
  if (!s.session.Start(settings, &s)) {
    ZLOG_WARN("worker %u: HTTP/2 session could not start (out of memory); closing",
              w_.options_.index);
    s.session.Close();
    sessions_.Free(idx);
    w_.CloseConn(conn_idx);
    return false;
  }
  c.h2 = idx + 1;
  s.reset_tokens = kResetBurst;
  s.reset_refill_ms = w_.NowMs();
  w_.stats_.h2_connections.Add();
  // The preface is the connection's first request head: from now on the idle timeout
  // applies while no stream is open.
  w_.timers_.Arm(w_.draining_ ? w_.t_drain_idle_ : w_.t_client_idle_[c.owner], conn_idx,
                 w_.NowMs());
  if (w_.draining_) s.session.Shutdown();
  Wake(conn_idx);  // the server preface (SETTINGS)
  return true;
}

void H2Sessions::OnInput(uint32_t conn_idx) {
  ConnIo& io = w_.Io(conn_idx);
  while (io.in_count > 0) {
    InSlice slice = w_.InFront(io);
    feeding_ = &slice;
    Session& s = Of(conn_idx);
    s.flushing = true;  // nothing may call into nghttp2 from its own callbacks
    bool ok = s.session.Receive(std::string_view(w_.SliceData(slice), slice.len));
    s.flushing = false;
    feeding_ = nullptr;
    // Streams that kept data took their own reference to the buffer.
    w_.ReleaseSlice(slice);
    w_.InPopFront(io);
    Conn& c = w_.conns_.Get(conn_idx);
    if (c.flags & kClosing) return;
    if (!ok) {
      // A connection error: nghttp2 queued GOAWAY; what follows is not read.
      w_.stats_.h2_connection_errors.Add();
      w_.DropInput(conn_idx);
      break;
    }
  }
  Wake(conn_idx);
}

void H2Sessions::QueueGathered(uint32_t conn, FrameGather& out) {
  if (out.block == kNil) return;
  w_.QueueOut(conn, w_.blocks_.Data(out.block), out.len, ItemOwner::kBlock, out.block);
  out = FrameGather{};
}

void H2Sessions::DropGathered(FrameGather& out) {
  if (out.block != kNil) w_.blocks_.Free(out.block);
  out = FrameGather{};
}

bool H2Sessions::GatherFrames(uint32_t conn, FrameGather& out, std::string_view bytes) {
  if (!w_.OutHasRoom(conn)) return false;
  while (!bytes.empty()) {
    if (out.block != kNil && out.len == w_.blocks_.Capacity(out.block)) QueueGathered(conn, out);
    if (out.block == kNil) out.block = w_.blocks_.Alloc(bytes.size());
    size_t take = std::min<size_t>(bytes.size(), w_.blocks_.Capacity(out.block) - out.len);
    memcpy(w_.blocks_.Data(out.block) + out.len, bytes.data(), take);
    out.len += static_cast<uint32_t>(take);
    bytes.remove_prefix(take);
  }
  return true;
}

codec::http2::HeaderSpace H2Sessions::LendHeaderSpace() {
  uint32_t b = w_.blocks_.AllocLarge();
  return {w_.blocks_.Data(b), w_.blocks_.Capacity(b), b};
}

void H2Sessions::TakeBackHeaderSpace(codec::http2::HeaderSpace space) { w_.blocks_.Free(space.id); }

void H2Sessions::Wake(uint32_t conn_idx) {
  Conn& c = w_.conns_.Get(conn_idx);
  if (c.h2 == 0 || (c.flags & kClosing)) return;
  Session& s = Of(conn_idx);
  if (s.flushing) {
    s.again = true;
    return;
  }
  if (s.scheduled) return;
  s.scheduled = true;
  pending_.emplace_back(conn_idx, c.gen);
}

void H2Sessions::FlushPending() {
  // Flushing may wake sessions again (more data from an upstream): they are appended.
  for (size_t i = 0; i < pending_.size(); i++) {
    auto [conn_idx, gen] = pending_[i];
    Conn& c = w_.conns_.Get(conn_idx);
    if (c.gen != gen || c.h2 == 0 || (c.flags & kClosing)) continue;
    Of(conn_idx).scheduled = false;
    Flush(conn_idx);
  }
  pending_.clear();
}

void H2Sessions::Flush(uint32_t conn_idx) {
  Conn& c = w_.conns_.Get(conn_idx);
  if (c.h2 == 0 || (c.flags & kClosing)) return;
  Session& s = Of(conn_idx);
  if (s.flushing) {
    s.again = true;
    return;
  }
  s.flushing = true;
  bool fatal = false;
  do {
    s.again = false;
    if (!s.session.Send()) fatal = true;
    QueueGathered(s.conn, s.out);
    // Streams whose response data made room read on from their upstream; streams whose
    // response is complete while the client still sends are told to stop (RFC 9113 §8.1).
    for (uint32_t e = s.streams; e != kNil && !fatal;) {
      Exchange& ex = w_.exchanges_.Get(e);
      uint32_t next = ex.h2_next;
      if (ex.h2_needs_pump) {
        ex.h2_needs_pump = false;
        // (It resumes the upstream's paused receive itself.)
        if (ex.upstream != kNil && ex.resp == RespState::kBody && !ex.up_h2) {
          w_.PumpResponseBody(e);
        }
      }
      Exchange& ex2 = w_.exchanges_.Get(e);
      if (ex2.resp_sent && !ex2.req_end && !ex2.h2_rst_sent) {
        ex2.h2_rst_sent = true;
        s.session.ResetStream(ex2.h2_stream, codec::http2::kNoError);
        s.again = true;
      }
      e = next;
    }
  } while (s.again && !fatal);
  s.flushing = false;
  w_.Flush(conn_idx);
  Conn& c2 = w_.conns_.Get(conn_idx);
  if (c2.flags & kClosing) return;
  if (fatal || s.session.Finished()) {
    // GOAWAY out (or the session failed): close once the queue is sent.
    c2.flags |= kCloseAfterSend;
    w_.timers_.Disarm(conn_idx);
    if (w_.OutCount(conn_idx) == 0 && !(c2.flags & kSendInflight)) w_.CloseConn(conn_idx);
  }
}

void H2Sessions::OnTimeout(uint32_t conn_idx) {
  Session& s = Of(conn_idx);
  if (s.open != 0) return;  // a stream's own timeouts (upstream side) govern it
  // Idle (or draining): GOAWAY, then close.
  s.session.Terminate(codec::http2::kNoError);
  Flush(conn_idx);
  Conn& c = w_.conns_.Get(conn_idx);
  if (!(c.flags & kClosing)) {
    c.flags |= kCloseAfterSend;
    if (w_.OutCount(conn_idx) == 0 && !(c.flags & kSendInflight)) w_.CloseConn(conn_idx);
  }
}

void H2Sessions::Drain(uint32_t conn_idx) {
  Of(conn_idx).session.Shutdown();
  Wake(conn_idx);
}

void H2Sessions::Teardown(uint32_t conn_idx) {
  Conn& c = w_.conns_.Get(conn_idx);
  if (c.h2 == 0) return;
  Session& s = Of(conn_idx);
  bool had_streams = s.open != 0;
  while (s.streams != kNil) {
    uint32_t e = s.streams;
    Exchange& ex = w_.exchanges_.Get(e);
    if (!ex.resp_sent) {
      w_.stats_.CountError(ErrorCause::kClientReset);
      w_.LogExchange(ex, ex.status, "aborted");
    }
    DropUpstream(e);
    Unlink(s, e);
    FreeStream(e);
  }
  if (had_streams) w_.stats_.client_idle.Add();  // CloseConn counts the connection idle
  DropGathered(s.out);
  s.session.Close();
  sessions_.Free(c.h2 - 1);
  c.h2 = 0;
}

// --- The codec's handler: storage for header blocks, and the output queue.

codec::http2::HeaderSpace H2Sessions::Session::AcquireHeaderSpace() {
  return owner->LendHeaderSpace();
}

void H2Sessions::Session::ReleaseHeaderSpace(codec::http2::HeaderSpace space) {
  owner->TakeBackHeaderSpace(space);
}

bool H2Sessions::Session::WriteFrames(std::string_view bytes) {
  return owner->GatherFrames(conn, out, bytes);
}

}  // namespace zproxy::dataplane
