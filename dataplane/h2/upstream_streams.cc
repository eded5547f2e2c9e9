// One exchange as a stream on an HTTP/2 upstream connection: the request (its block,
// kept for retries, and its body from Exchange::req_data), the response head, body and
// trailers back to the client, and the stream's end.
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "dataplane/codec/http2/request_block.h"
#include "dataplane/h2/h2_upstreams.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {
namespace {

// Request body an HTTP/1 client may have waiting in Exchange::req_data.
constexpr uint32_t kRequestSlices = 8;

}  // namespace

void H2Upstreams::Link(Session& s, uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ex.up_prev = kNil;
  ex.up_next = s.streams;
  if (s.streams != kNil) w_.exchanges_.Get(s.streams).up_prev = ex_idx;
  s.streams = ex_idx;
  s.count++;
}

void H2Upstreams::Unlink(Session& s, uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.up_prev != kNil)
    w_.exchanges_.Get(ex.up_prev).up_next = ex.up_next;
  else
    s.streams = ex.up_next;
  if (ex.up_next != kNil) w_.exchanges_.Get(ex.up_next).up_prev = ex.up_prev;
  ex.up_prev = ex.up_next = kNil;
  s.count--;
}

void H2Upstreams::Attach(uint32_t ex_idx, uint32_t up) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  Session& s = Of(up);
  ex.upstream = up;
  if (ex.up_prev == kNil && ex.up_next == kNil && s.streams != ex_idx) Link(s, ex_idx);
  if (s.connected) Submit(s, ex_idx);
}

void H2Upstreams::Submit(Session& s, uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.up_stream != 0) return;
  std::string_view block(w_.blocks_.Data(ex.req_head_block), ex.req_head_len);
  int32_t id = s.session.SubmitRequest(block, ex.h2_req_body, ex_idx);
  if (id < 0) {
    // The connection stopped taking streams (GOAWAY): another one.
    Unlink(s, ex_idx);
    ex.upstream = kNil;
    w_.UpstreamFailed(ex_idx, ErrorCause::kUpstreamClosed, true);
    return;
  }
  ex.up_stream = id;
  ex.head_queued = true;
  if (!ex.h2_req_body) ex.req_done = true;
  w_.timers_.Arm(w_.Cs(ex.cluster).t_read, s.conn, w_.NowMs());
  // An HTTP/1 client's body is read now that there is somewhere to send it.
  if (ex.h2_stream == 0 && ex.h2_req_body) TakeH1RequestBody(ex_idx);
  Wake(s.conn);
}

void H2Upstreams::Detach(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  uint32_t up = ex.upstream;
  if (up == kNil) return;
  ex.upstream = kNil;
  Conn& u = w_.conns_.Get(up);
  if (u.up_h2 == 0) return;
  Session& s = Of(up);
  Unlink(s, ex_idx);
  if (s.draining) {
    if (s.count == 0) w_.CloseConn(up);  // GOAWAY: closes once its streams ended
    return;
  }
  ClusterState& cs = w_.Cs(u.owner);
  if (w_.draining_ || cs.retired) {
    // Not to be reused (drain, or a config change retired the cluster), but other
    // streams may still be on it: it closes with the last of them.
    cs.pool.Remove(up, u.endpoint);
    s.draining = true;
    if (s.count == 0) w_.CloseConn(up);
    return;
  }
  bool keep = true;
  switch (cs.pool.Release(up, u.endpoint, keep, cs.cfg->pool_size)) {
    case upstream::Released::kClose:
      w_.CloseConn(up);
      return;
    case upstream::Released::kIdle:
      u.flags |= kPooled | kReused;
      w_.stats_.upstream_idle.Add();
      w_.timers_.Arm(cs.t_pool, up, w_.NowMs());
      return;
    case upstream::Released::kBusy:
      return;
  }
}

void H2Upstreams::Release(uint32_t ex_idx, bool cancel) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.upstream == kNil) return;
  Conn& u = w_.conns_.Get(ex.upstream);
  if (cancel && ex.up_stream != 0 && u.up_h2 != 0) {
    // Stops the upstream's work on it; the stream's close callback finds no exchange.
    Session& s = Of(ex.upstream);
    s.session.ResetStream(ex.up_stream, codec::http2::kCancel);
    Wake(ex.upstream);
  }
  uint32_t up = ex.upstream;
  Detach(ex_idx);
  // The stream (if nghttp2 still has it) no longer names an exchange.
  (void)up;
  ex.up_stream = -1;
}

// --- Request body

void H2Upstreams::TakeH1RequestBody(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.req_end || ex.upstream == kNil || ex.up_stream <= 0) return;
  uint32_t client = ex.client;
  ConnIo& io = w_.Io(client);
  codec::http1::BodyDecoder& body = ex.down.request_body();
  bool added = false;
  while (!ex.req_end && io.in_count > 0 && ex.req_data.count < kRequestSlices) {
    const InSlice& s = w_.InFront(io);
    codec::http1::BodyStep step = body.Feed(std::string_view(w_.SliceData(s), s.len));
    if (step.status == http1::Status::kError) {
      w_.stats_.parser_rejections[static_cast<int>(step.error)].Add();
      w_.AbortExchange(ex_idx, true);
      return;
    }
    if (!step.data.empty()) {
      if (s.is_block) {
        uint32_t b = w_.blocks_.Alloc(step.data.size());
        memcpy(w_.blocks_.Data(b), step.data.data(), step.data.size());
        w_.h2_.PushSlice(ex.req_data, InSlice{b, 0, static_cast<uint32_t>(step.data.size()), true});
      } else {
        w_.BufRef(static_cast<uint16_t>(s.ref));
        uint32_t off =
            static_cast<uint32_t>(step.data.data() - w_.bufs_.Data(static_cast<uint16_t>(s.ref)));
        w_.h2_.PushSlice(ex.req_data,
                         InSlice{s.ref, off, static_cast<uint32_t>(step.data.size()), false});
      }
      added = true;
    }
    if (body.done()) {
      ex.req_end = true;
      added = true;
    }
    if (step.consumed == 0) break;
    w_.ConsumeIn(client, step.consumed);
  }
  w_.MaybeResumeRecv(client);
  if (added) ResumeRequest(ex_idx);
}

void H2Upstreams::ResumeRequest(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.upstream == kNil || ex.up_stream <= 0) return;
  Of(ex.upstream).session.ResumeRequestData(ex.up_stream);
  Wake(ex.upstream);
}

size_t H2Upstreams::Session::RequestDataReady(uint32_t ex_idx, size_t max, bool* last) {
  Exchange& ex = owner->w_.exchanges_.Get(ex_idx);
  size_t n = static_cast<size_t>(std::min<uint64_t>(max, ex.req_data.bytes));
  *last = ex.req_end && n == ex.req_data.bytes;
  if (*last) ex.req_done = true;
  return n;
}

bool H2Upstreams::Session::WriteData(uint32_t ex_idx, std::string_view frame_head, size_t len) {
  return owner->WriteData(*this, ex_idx, frame_head, len);
}

bool H2Upstreams::WriteData(Session& s, uint32_t ex_idx, std::string_view frame_head, size_t len) {
  if (!w_.OutHasRoom(s.conn)) return false;
  s.WriteFrames(frame_head);
  w_.h2_.QueueGathered(s.conn, s.out);
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  w_.h2_.MoveData(ex.req_data, s.conn, len);
  if (ex.h2_stream != 0) {
    // An HTTP/2 client: its window opens by what went upstream.
    w_.h2_.ConsumedRequest(ex_idx, len);
  } else {
    TakeH1RequestBody(ex_idx);  // room for more of the client's body
  }
  return true;
}

// --- Response

void H2Upstreams::Session::OnResponseHead(uint32_t ex_idx, http::ResponseHead& head,
                                          bool end_stream) {
  Worker& w = owner->w_;
  Exchange& ex = w.exchanges_.Get(ex_idx);
  if (ex.upstream == kNil) return;  // cancelled
  if (head.interim()) {
    if (head.status == 101) return;              // not a thing in HTTP/2
    if (++ex.interims > kMaxInterimResponses) {  // as over HTTP/1: a broken upstream
      w.UpstreamFailed(ex_idx, ErrorCause::kBadResponse, false);
      return;
    }
    if (ex.h2_stream != 0) {
      w.h2_.SendInterim(ex_idx, head);
    } else if (ex.down.TakesInterim()) {
      size_t len = 0;
      uint32_t b = w.WriteIntoBlock(
          [&](char* out, size_t cap) {
            return codec::http1::ServerStream::EncodeInterim(head, out, cap);
          },
          &len);
      if (b != kNil) {
        w.QueueOut(ex.client, w.blocks_.Data(b), static_cast<uint32_t>(len), ItemOwner::kBlock, b);
      }
      w.Flush(ex.client);
    }
    return;
  }
  w.RecordUpstreamResult(ex.cluster, ex.endpoint, head.status < 500);
  if (w.RetryOnStatus(ex_idx, head.status)) return;  // this stream was reset
  ex.status = head.status;
  w.stats_.CountStatus(head.status);
  w.EndRouteTimers(ex_idx);
  w.ApplyResponseChanges(ex, head);
  ex.resp_started = true;
  ex.resp = end_stream ? RespState::kDone : RespState::kBody;
  if (ex.h2_stream != 0) {
    w.h2_.SendResponseHead(ex_idx, head, !end_stream);
    return;
  }
  // An HTTP/1 client: a body of unknown length is chunked for it (unless HTTP/1.0,
  // which gets it close-delimited).
  if (head.reason.empty()) head.reason = codec::http1::StatusReason(head.status);
  bool close_client = stream::CloseClientAfterResponse(w.Progress(ex));
  size_t len = 0;
  uint32_t b = w.WriteIntoBlock(
      [&](char* out, size_t cap) {
        return ex.down.EncodeResponseHead(head, close_client, out, cap);
      },
      &len);
  if (b == kNil) {
    w.AbortExchange(ex_idx, true);
    return;
  }
  ex.resp_chunk_encode =
      head.body.framing == http::Framing::kChunked && !ex.down.decode_response_body();
  w.QueueOut(ex.client, w.blocks_.Data(b), static_cast<uint32_t>(len), ItemOwner::kBlock, b);
  ex.resp_bytes += len;
  w.Flush(ex.client);
}

void H2Upstreams::Session::OnResponseData(uint32_t ex_idx, std::string_view data) {
  Worker& w = owner->w_;
  Exchange& ex = w.exchanges_.Get(ex_idx);
  if (ex.upstream == kNil || ex.resp != RespState::kBody) {
    session.ConsumeResponseData(ex.up_stream, data.size());
    return;
  }
  if (ex.h2_stream != 0) {
    w.h2_.PushResponseData(ex_idx, *owner->feeding_, data);
  } else {
    w.h2_.PushSliceOf(ex.resp_data, *owner->feeding_, data);
    owner->PumpH1Response(ex_idx);
  }
}

void H2Upstreams::Session::OnResponseTrailers(uint32_t ex_idx, std::span<http::Field> fields) {
  Worker& w = owner->w_;
  Exchange& ex = w.exchanges_.Get(ex_idx);
  if (ex.upstream == kNil || fields.empty()) return;
  size_t len = 0;
  uint32_t b = w.WriteIntoBlock(
      [&](char* out, size_t cap) { return codec::http2::EncodeFieldBlock(fields, out, cap); },
      &len);
  if (b == kNil) return;  // too large to keep: dropped
  if (ex.trailer_block != kNil) w.blocks_.Free(ex.trailer_block);
  ex.trailer_block = b;
  ex.trailer_len = static_cast<uint32_t>(len);
}

std::span<const http::Field> H2Upstreams::Trailers(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.trailer_block == kNil) return {};
  std::string_view block(w_.blocks_.Data(ex.trailer_block), ex.trailer_len);
  size_t n = 0;
  std::string_view name, value;
  while (n < std::size(trailer_fields_) && codec::http2::NextBlockField(&block, &name, &value)) {
    trailer_fields_[n++] = {name, value};
  }
  return {trailer_fields_, n};
}

void H2Upstreams::Session::OnResponseEnd(uint32_t ex_idx) {
  Worker& w = owner->w_;
  Exchange& ex = w.exchanges_.Get(ex_idx);
  if (ex.upstream == kNil) return;
  ex.resp = RespState::kDone;
  owner->FinishResponse(ex_idx);
}

void H2Upstreams::FinishResponse(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.h2_stream != 0) {
    w_.FinishExchange(ex_idx);  // the upstream slot back; the client stream ends with the data
    return;
  }
  PumpH1Response(ex_idx);
}

void H2Upstreams::PumpH1Response(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  uint32_t client = ex.client;
  size_t moved = 0;
  while (ex.resp_data.head != kNil && w_.OutHasRoom(client)) {
    const InSlice& sl = w_.slices_.Get(ex.resp_data.head).slice;
    uint32_t len = sl.len;
    if (ex.resp_chunk_encode) {
      uint32_t b = w_.blocks_.Alloc(16);
      int n = snprintf(w_.blocks_.Data(b), 16, "%x\r\n", len);
      w_.QueueOut(client, w_.blocks_.Data(b), static_cast<uint32_t>(n), ItemOwner::kBlock, b);
      ex.resp_bytes += static_cast<uint64_t>(n) + 2;
    }
    w_.h2_.MoveData(ex.resp_data, client, len);
    if (ex.resp_chunk_encode) w_.QueueOut(client, "\r\n", 2, ItemOwner::kStatic, 0);
    ex.resp_bytes += len;
    moved += len;
  }
  if (moved != 0) ConsumedResponse(ex_idx, moved);
  if (ex.resp == RespState::kDone && ex.resp_data.head == kNil) {
    if (ex.resp_chunk_encode) {
      // The last chunk, with the trailers if any (HTTP/1.1 chunked trailer section).
      size_t len = 0;
      std::span<const http::Field> trailers = Trailers(ex_idx);
      uint32_t b = w_.WriteIntoBlock(
          [&](char* out, size_t cap) -> size_t {
            size_t n = 0;
            auto put = [&](std::string_view s) {
              if (n + s.size() <= cap) memcpy(out + n, s.data(), s.size());
              n += s.size();
            };
            put("0\r\n");
            for (const http::Field& f : trailers) {
              put(f.name);
              put(": ");
              put(f.value);
              put("\r\n");
            }
            put("\r\n");
            return n <= cap ? n : 0;
          },
          &len);
      if (b != kNil) {
        w_.QueueOut(client, w_.blocks_.Data(b), static_cast<uint32_t>(len), ItemOwner::kBlock, b);
      }
    }
    w_.Flush(client);
    w_.FinishExchange(ex_idx);
    return;
  }
  w_.Flush(client);
}

void H2Upstreams::ConsumedResponse(uint32_t ex_idx, size_t n) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.upstream == kNil || ex.up_stream <= 0) return;
  if (w_.conns_.Get(ex.upstream).up_h2 == 0) return;
  Of(ex.upstream).session.ConsumeResponseData(ex.up_stream, n);
  Wake(ex.upstream);
}

void H2Upstreams::Session::OnStreamClose(uint32_t ex_idx, uint32_t error_code) {
  owner->OnStreamClose(*this, ex_idx, error_code);
}

void H2Upstreams::OnStreamClose(Session& s, uint32_t ex_idx, uint32_t error_code) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  // A stream the exchange gave up (reset, finished early) is no longer its.
  if (ex.upstream != s.conn || ex.up_stream <= 0) return;
  if (error_code == 0 && ex.resp == RespState::kDone) {
    // Complete. What the client has not taken yet no longer counts against the
    // connection's window (the stream is gone).
    s.session.ConsumeResponseData(ex.up_stream, ex.resp_data.bytes);
    if (ex.h2_stream == 0 && ex.resp_data.head != kNil) {
      // An HTTP/1 client still takes the rest: the connection is free for others now.
      Detach(ex_idx);
    }
    return;
  }
  // Reset by the upstream, or closed before the response ended. REFUSED_STREAM means it
  // was never processed (RFC 9113 §8.7): safe to send elsewhere.
  bool refused = error_code == codec::http2::kRefusedStream;
  Unlink(s, ex_idx);
  ex.upstream = kNil;
  if (refused && !ex.resp_started && Resubmit(ex_idx)) return;
  w_.UpstreamFailed(ex_idx, ErrorCause::kUpstreamClosed, false);
}

}  // namespace zproxy::dataplane
