// One HTTP/2 stream as an exchange: its request towards the upstream (head through the
// shared proxy stream start, body from Exchange::req_data), its response back (head,
// body through Exchange::resp_data), zproxy's own answers and resets.
#include <cstdio>
#include <cstring>

#include "common/log.h"
#include "dataplane/codec/http2/request_block.h"
#include "dataplane/h2/h2_sessions.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {
namespace {

// Response data a stream may hold before its upstream is paused: a few receive buffers.
constexpr uint32_t kStreamResponseSlices = 4;
// Request data smaller than this is copied out of the receive buffer into a block, so
// many small frames cannot pin many 32 KiB buffers.
constexpr size_t kCopyBelow = 1024;

// gRPC status codes (grpc/status.h) for zproxy's own answers.
int GrpcStatusFor(int http_status) {
  switch (http_status) {
    case 404:
      return 12;  // UNIMPLEMENTED: no route
    case 504:
    case 408:
      return 4;  // DEADLINE_EXCEEDED
    case 413:
    case 431:
      return 8;  // RESOURCE_EXHAUSTED
    case 400:
      return 13;  // INTERNAL
    default:
      return 14;  // UNAVAILABLE
  }
}

}  // namespace

// --- Requests

uint32_t H2Sessions::OpenStream(Session& s, int32_t stream) {
  uint32_t e = w_.exchanges_.Alloc();
  Exchange& ex = w_.exchanges_.Get(e);
  ex.client = s.conn;
  ex.h2_stream = stream;
  ex.h2_next = s.streams;
  if (s.streams != kNil) w_.exchanges_.Get(s.streams).h2_prev = e;
  s.streams = e;
  if (s.open++ == 0) {
    w_.stats_.client_idle.Sub();  // busy while a stream is open
    w_.timers_.Disarm(s.conn);
  }
  w_.stats_.h2_streams.Add();
  if (w_.access_log_.enabled()) ex.start_us = w_.NowUs();
  return e;
}

uint32_t H2Sessions::Session::OnRequestHead(int32_t stream, http::RequestHead& head,
                                            bool end_stream) {
  uint32_t e = owner->OpenStream(*this, stream);
  owner->StartRequest(e, head, end_stream);
  return e;
}

uint32_t H2Sessions::Session::OnRequestRefused(int32_t stream, int status, std::string_view why) {
  uint32_t e = owner->OpenStream(*this, stream);
  owner->w_.stats_.h2_refused_streams.Add();
  char body[160];
  int n = snprintf(body, sizeof(body), "zproxy: bad request (%.*s)\n", static_cast<int>(why.size()),
                   why.data());
  owner->LocalResponse(e, status, std::string_view(body, static_cast<size_t>(n)), "bad_request");
  return e;
}

void H2Sessions::StartRequest(uint32_t ex_idx, http::RequestHead& head, bool end_stream) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ex.req_end = end_stream;
  ex.h2_req_body = !end_stream;
  if (head.method_id == http::Method::kConnect) {
    // RFC 9113 §8.5: a tunnel to :authority, allowed by the listener's connect rules.
    if (w_.access_log_.enabled()) {
      std::string_view rl = codec::http1::RequestLine(head, ex.req_line, sizeof(ex.req_line));
      ex.req_line_len = static_cast<uint8_t>(rl.size());
    }
    if (!head.upgrade.empty()) {
      LocalResponse(ex_idx, 501, "zproxy: extended CONNECT is not supported\n", "connect_h2");
      return;
    }
    int status = 0;
    std::string_view body, note;
    if (!w_.connect_.StartH2Connect(ex_idx, head.authority, &status, &body, &note)) {
      LocalResponse(ex_idx, status, body, note);
      return;
    }
    ex.h2_routed = true;  // holds the connect state's cluster reference
    ex.h2_req_body = true;
    return;
  }
  // How the client reached us (X-Forwarded-Proto), not what its :scheme claims.
  head.scheme = w_.tls_.Scheme(w_.conns_.Get(ex.client));
  // The HTTP/1 upstream request: a body of unknown length goes chunked.
  ex.req_chunked = head.body.framing == http::Framing::kChunked;
  Worker::Refusal refusal;
  if (!w_.RouteRequest(ex_idx, head, &refusal)) {
    // A response to HEAD has no content (RFC 9110 §9.3.2), whatever the answer.
    const bool head_request = head.method_id == http::Method::kHead;
    LocalResponse(ex_idx, refusal.status, refusal.body, refusal.note,
                  LocalExtras{refusal.content_type, refusal.fields,
                              refusal.omit_body || head_request, refusal.retry_after_s});
    return;
  }
  ex.h2_routed = true;
  ex.req_done = end_stream;
  w_.StartRouteTimers(ex_idx);
  w_.StartTry(ex_idx);
  if (!w_.AssignUpstream(ex_idx)) w_.RespondUpstreamError(ex_idx, w_.NoUpstreamCause(ex_idx));
}

void H2Sessions::PushSlice(SliceList& list, const InSlice& s) {
  uint32_t n = w_.slices_.Alloc();
  w_.slices_.Get(n).slice = s;
  if (list.tail != kNil)
    w_.slices_.Get(list.tail).next = n;
  else
    list.head = n;
  list.tail = n;
  list.count++;
  list.bytes += s.len;
}

uint64_t H2Sessions::ReleaseList(SliceList& list) {
  uint64_t bytes = list.bytes;
  while (list.head != kNil) {
    uint32_t n = list.head;
    w_.ReleaseSlice(w_.slices_.Get(n).slice);
    list.head = w_.slices_.Get(n).next;
    w_.slices_.Free(n);
  }
  list = SliceList{};
  return bytes;
}

void H2Sessions::Session::OnRequestData(uint32_t handle, std::string_view data) {
  owner->OnRequestData(handle, data);
}

void H2Sessions::OnRequestData(uint32_t ex_idx, std::string_view data) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  Session& s = Of(ex.client);
  if (ex.h2_abandoned) {
    s.session.ConsumeRequestData(ex.h2_stream, data.size());  // nobody takes it
    return;
  }
  ex.req_data_seen += data.size();
  if (ex.max_body != 0 && ex.req_data_seen > ex.max_body) {
    w_.stats_.CountError(ErrorCause::kBodyTooLarge);
    s.session.ConsumeRequestData(ex.h2_stream, data.size());
    if (!ex.resp_started) {
      LocalResponse(ex_idx, 413, "zproxy: request body too large\n", "body_too_large");
    } else {
      Reset(ex_idx);
    }
    return;
  }
  const InSlice& in = *feeding_;
  if (!in.is_block && data.size() < kCopyBelow) {
    // Small pieces are copied: many small frames must not pin many 32 KiB buffers.
    uint32_t b = w_.blocks_.Alloc(data.size());
    memcpy(w_.blocks_.Data(b), data.data(), data.size());
    PushSlice(ex.req_data, InSlice{b, 0, static_cast<uint32_t>(data.size()), true});
  } else {
    PushSliceOf(ex.req_data, in, data);
  }
  PumpRequestBody(ex_idx);
}

void H2Sessions::Session::OnRequestEnd(uint32_t handle) {
  Exchange& ex = owner->w_.exchanges_.Get(handle);
  ex.req_end = true;
  if (!ex.h2_abandoned) owner->PumpRequestBody(handle);
}

void H2Sessions::PumpRequestBody(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (w_.conns_.Get(ex.client).h2 == 0) return;  // the client's connection is closing
  MaybeShutdownUpstream(ex_idx);
  if (ex.req_done || ex.upstream == kNil || !ex.head_queued || ex.h2_abandoned) return;
  if (ex.up_h2) {
    w_.h2up_.ResumeRequest(ex_idx);  // the upstream session pulls from req_data
    return;
  }
  uint32_t up = ex.upstream;
  size_t forwarded = 0;
  while (ex.req_data.head != kNil && w_.OutHasRoom(up)) {
    uint32_t n = ex.req_data.head;
    InSlice slice = w_.slices_.Get(n).slice;
    if (ex.req_chunked) {
      uint32_t b = w_.blocks_.Alloc(16);
      int len = snprintf(w_.blocks_.Data(b), 16, "%x\r\n", slice.len);
      w_.QueueOut(up, w_.blocks_.Data(b), static_cast<uint32_t>(len), ItemOwner::kBlock, b);
    }
    // The list's reference moves to the queue.
    if (slice.is_block) {
      w_.QueueOut(up, w_.blocks_.Data(slice.ref) + slice.off, slice.len, ItemOwner::kBlock,
                  slice.ref);
    } else {
      w_.QueueOut(up, w_.SliceData(slice), slice.len, ItemOwner::kBuffer, slice.ref);
      w_.BufUnref(static_cast<uint16_t>(slice.ref));
    }
    if (ex.req_chunked) w_.QueueOut(up, "\r\n", 2, ItemOwner::kStatic, 0);
    forwarded += slice.len;
    ex.req_data.head = w_.slices_.Get(n).next;
    if (ex.req_data.head == kNil) ex.req_data.tail = kNil;
    ex.req_data.count--;
    ex.req_data.bytes -= slice.len;
    w_.slices_.Free(n);
  }
  if (ex.req_data.head == kNil && ex.req_end) {
    if (ex.req_chunked) w_.QueueOut(up, "0\r\n\r\n", 5, ItemOwner::kStatic, 0);
    ex.req_done = true;
    // A tunnel: the client's END_STREAM is its half-close, passed on once sent.
    if (ex.connect) ex.h2_shutdown_up = true;
  }
  w_.Flush(up);
  MaybeShutdownUpstream(ex_idx);
  ConsumedRequest(ex_idx, forwarded);
}

void H2Sessions::MaybeShutdownUpstream(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (!ex.h2_shutdown_up || ex.upstream == kNil) return;
  if (w_.OutCount(ex.upstream) != 0 || (w_.conns_.Get(ex.upstream).flags & kSendInflight)) {
    return;  // after the queued bytes (the upstream's send completion comes back here)
  }
  ex.h2_shutdown_up = false;
  w_.ShutdownWrite(ex.upstream);
}

void H2Sessions::EstablishTunnel(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  w_.stats_.CountStatus(200);
  ex.status = 200;
  ex.head_queued = true;
  ex.resp_started = true;
  ex.resp = RespState::kBody;
  // The target's bytes are the response body until it closes.
  ex.up.response_body().Start(http::Body{http::Framing::kUntilClose, 0}, false);
  ex.req_done = false;
  http::ResponseHead head;
  head.status = 200;
  SendResponseHead(ex_idx, head, true);
  w_.timers_.Arm(w_.Cs(ex.cluster).t_read, ex.upstream, w_.NowMs());
  PumpRequestBody(ex_idx);  // what the client sent meanwhile
}

void H2Sessions::ConsumedRequest(uint32_t ex_idx, size_t n) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (n == 0 || w_.conns_.Get(ex.client).h2 == 0) return;
  Of(ex.client).session.ConsumeRequestData(ex.h2_stream, n);
  Wake(ex.client);  // WINDOW_UPDATE
}

// --- Responses

void H2Sessions::SendInterim(uint32_t ex_idx, const http::ResponseHead& head) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (head.status == 101) return;  // never asked for over HTTP/2
  Of(ex.client).session.SubmitInterim(ex.h2_stream, head);
  Wake(ex.client);
}

void H2Sessions::SendResponseHead(uint32_t ex_idx, const http::ResponseHead& head, bool has_body) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (!Of(ex.client).session.SubmitResponse(ex.h2_stream, head, has_body)) {
    Reset(ex_idx);
    return;
  }
  if (!has_body) ex.resp_sent = true;
  Wake(ex.client);
}

bool H2Sessions::ResponseHasRoom(const Exchange& ex) const {
  return ex.resp_data.count < kStreamResponseSlices;
}

void H2Sessions::PushSliceOf(SliceList& list, const InSlice& s, std::string_view data) {
  if (data.empty()) return;
  // Only the first waiting piece may pin a receive buffer; behind it (the peer is
  // slower than its sender) pieces are copied, so a stream that waits, e.g. on a window
  // its client never opens, holds at most one of the worker's shared buffers.
  if (s.is_block || list.count != 0) {
    // Blocks are not reference counted: copy.
    while (!data.empty()) {
      uint32_t b = w_.blocks_.Alloc(data.size());
      size_t take = std::min<size_t>(data.size(), w_.blocks_.Capacity(b));
      memcpy(w_.blocks_.Data(b), data.data(), take);
      PushSlice(list, InSlice{b, 0, static_cast<uint32_t>(take), true});
      data.remove_prefix(take);
    }
    return;
  }
  auto bid = static_cast<uint16_t>(s.ref);
  w_.BufRef(bid);
  auto off = static_cast<uint32_t>(data.data() - w_.bufs_.Data(bid));
  PushSlice(list, InSlice{s.ref, off, static_cast<uint32_t>(data.size()), false});
}

void H2Sessions::PushResponseData(uint32_t ex_idx, const InSlice& s, std::string_view data) {
  if (data.empty()) return;
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  PushSliceOf(ex.resp_data, s, data);
  Of(ex.client).session.ResumeResponseData(ex.h2_stream);
  Wake(ex.client);
}

void H2Sessions::AddTrailerLines(uint32_t ex_idx, std::string_view lines) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.trailer_block == kNil) {
    ex.trailer_block = w_.blocks_.AllocLarge();
    ex.trailer_len = 0;
    ex.trailer_raw = true;
  }
  if (!ex.trailer_raw) return;
  size_t room = w_.blocks_.Capacity(ex.trailer_block) - ex.trailer_len;
  size_t take = std::min(room, lines.size());  // beyond a large block: cut (rare, logged?)
  memcpy(w_.blocks_.Data(ex.trailer_block) + ex.trailer_len, lines.data(), take);
  ex.trailer_len += static_cast<uint32_t>(take);
}

namespace {

// Connection-specific or framing fields never go out as HTTP/2 trailers.
bool TrailerAllowed(std::string_view name) {
  for (std::string_view bad : {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                               "upgrade", "te", "content-length", "host"}) {
    if (http1::EqualsIgnoreCase(name, bad)) return false;
  }
  return true;
}

}  // namespace

// HTTP/1 trailer lines -> the field block HTTP/2 trailers are sent from (h2up_.Trailers).
void H2Sessions::ConvertTrailerLines(Exchange& ex) {
  Worker& w = w_;
  http::Field* fields = w.header_storage_;
  size_t max = std::size(w.header_storage_);
  std::string_view raw(w.blocks_.Data(ex.trailer_block), ex.trailer_len);
  size_t n = 0;
  while (!raw.empty() && n < max) {
    size_t eol = raw.find("\r\n");
    std::string_view line = raw.substr(0, eol);
    raw.remove_prefix(eol == std::string_view::npos ? raw.size() : eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (TrailerAllowed(name)) fields[n++] = {name, value};
  }
  size_t len = 0;
  uint32_t b = w.WriteIntoBlock(
      [&](char* out, size_t cap) {
        return codec::http2::EncodeFieldBlock(std::span<const http::Field>(fields, n), out, cap);
      },
      &len);
  w.blocks_.Free(ex.trailer_block);
  ex.trailer_block = b;  // kNil if they did not fit: none sent
  ex.trailer_len = static_cast<uint32_t>(len);
  ex.trailer_raw = false;
}

void H2Sessions::EndResponse(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.trailer_raw && ex.trailer_block != kNil) {
    ConvertTrailerLines(ex);
  }
  ex.resp_end = true;
  Of(ex.client).session.ResumeResponseData(ex.h2_stream);
  Wake(ex.client);
}

size_t H2Sessions::Session::ResponseDataReady(uint32_t handle, size_t max, bool* last) {
  return owner->ResponseDataReady(handle, max, last);
}

size_t H2Sessions::ResponseDataReady(uint32_t ex_idx, size_t max, bool* last) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  size_t n = static_cast<size_t>(std::min<uint64_t>(max, ex.resp_data.bytes));
  *last = ex.resp_end && n == ex.resp_data.bytes;
  if (*last) ex.resp_sent = true;
  return n;
}

std::span<const http::Field> H2Sessions::Session::ResponseTrailers(uint32_t handle) {
  return owner->w_.h2up_.Trailers(handle);
}

bool H2Sessions::Session::WriteData(uint32_t handle, std::string_view frame_head, size_t len) {
  return owner->WriteData(*this, handle, frame_head, len);
}

bool H2Sessions::WriteData(Session& s, uint32_t ex_idx, std::string_view frame_head, size_t len) {
  if (!w_.OutHasRoom(s.conn)) return false;
  s.WriteFrames(frame_head);
  QueueGathered(s.conn, s.out);
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  ex.resp_bytes += len;
  MoveData(ex.resp_data, s.conn, len);
  // An HTTP/2 upstream's window opens by what the client took.
  if (ex.up_h2) w_.h2up_.ConsumedResponse(ex_idx, len);
  ex.h2_needs_pump = true;
  return true;
}

void H2Sessions::MoveData(SliceList& list, uint32_t to, size_t len) {
  if (len == 0) return;  // an empty DATA frame: END_STREAM after the body
  if (w_.slices_.Get(list.head).slice.len >= len) {
    // The common case: the frame's data is one piece of one buffer, sent from there.
    const InSlice& front = w_.slices_.Get(list.head).slice;
    w_.QueueFromSlice(to, front, std::string_view(w_.SliceData(front), len));
  } else {
    // Spread over several slices: gathered into one block (at most a frame, 16 KiB).
    uint32_t b = w_.blocks_.Alloc(len);
    size_t copied = 0;
    for (uint32_t n = list.head; copied < len; n = w_.slices_.Get(n).next) {
      const InSlice& sl = w_.slices_.Get(n).slice;
      size_t take = std::min<size_t>(sl.len, len - copied);
      memcpy(w_.blocks_.Data(b) + copied, w_.SliceData(sl), take);
      copied += take;
    }
    w_.QueueOut(to, w_.blocks_.Data(b), static_cast<uint32_t>(len), ItemOwner::kBlock, b);
  }
  size_t left = len;
  while (left > 0) {
    uint32_t n = list.head;
    InSlice& sl = w_.slices_.Get(n).slice;
    size_t take = std::min<size_t>(sl.len, left);
    sl.off += static_cast<uint32_t>(take);
    sl.len -= static_cast<uint32_t>(take);
    left -= take;
    if (sl.len == 0) {
      w_.ReleaseSlice(sl);
      list.head = w_.slices_.Get(n).next;
      if (list.head == kNil) list.tail = kNil;
      list.count--;
      w_.slices_.Free(n);
    }
  }
  list.bytes -= len;
}

// --- Ends

void H2Sessions::DropUpstream(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.lb_counted) {
    w_.Cs(ex.cluster).lb->OnConnectionClosed(ex.endpoint);
    ex.lb_counted = false;
  }
  w_.CloseUpstreamOf(ex_idx);
}

void H2Sessions::LocalResponse(uint32_t ex_idx, int status, std::string_view body,
                               std::string_view note, const LocalExtras& extras) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  DropUpstream(ex_idx);
  Session& s = Of(ex.client);
  ex.h2_abandoned = true;  // what the client still sends is dropped
  s.session.ConsumeRequestData(ex.h2_stream, ReleaseList(ex.req_data));
  ReleaseList(ex.resp_data);
  ex.status = static_cast<uint16_t>(status);
  ex.resp_started = true;
  ex.resp = RespState::kDone;
  w_.stats_.CountStatus(status);
  char len[24];
  char grpc_status[8];
  char retry_after[12];
  http::ResponseHead head;
  http::Field fields[4 + kMaxLocalExtraFields];
  bool has_body = false;
  if (ex.grpc) {
    // Trailers-only (gRPC over HTTP/2): HTTP 200, the status in grpc-status.
    head.status = 200;
    snprintf(grpc_status, sizeof(grpc_status), "%d", GrpcStatusFor(status));
    std::string_view msg = body.substr(0, body.find('\n'));
    fields[0] = {"content-type", "application/grpc"};
    fields[1] = {"grpc-status", grpc_status};
    fields[2] = {"grpc-message", msg};
    head.fields = std::span<http::Field>(fields, 3);
  } else {
    head.status = static_cast<uint16_t>(status);
    int n = snprintf(len, sizeof(len), "%zu", body.size());
    size_t nf = 0;
    if (!body.empty() || !extras.content_type.empty()) {
      fields[nf++] = {"content-type", extras.content_type.empty() ? std::string_view("text/plain")
                                                                  : extras.content_type};
    }
    for (const http::Field& f : extras.fields.first(
             std::min(extras.fields.size(), static_cast<size_t>(kMaxLocalExtraFields)))) {
      fields[nf++] = f;
    }
    if (status != 204 && status != 304) {
      fields[nf++] = {"content-length", std::string_view(len, static_cast<size_t>(n))};
    }
    if (extras.retry_after_s != 0) {
      int r = snprintf(retry_after, sizeof(retry_after), "%u", extras.retry_after_s);
      fields[nf++] = {"retry-after", std::string_view(retry_after, static_cast<size_t>(r))};
    }
    head.fields = std::span<http::Field>(fields, nf);
    // HEAD: the length of what a GET would get, no DATA (RFC 9110 §9.3.2). ex.method is
    // set once routed; earlier refusals say it through extras.omit_body.
    has_body = !body.empty() && !extras.omit_body && ex.method != http::Method::kHead;
    if (has_body) {
      uint32_t b = w_.blocks_.Alloc(body.size());
      memcpy(w_.blocks_.Data(b), body.data(), body.size());
      PushSlice(ex.resp_data, InSlice{b, 0, static_cast<uint32_t>(body.size()), true});
    }
  }
  ex.resp_end = true;
  w_.LogExchange(ex, status, note);
  if (!s.session.SubmitResponse(ex.h2_stream, head, has_body)) {
    s.session.ResetStream(ex.h2_stream, codec::http2::kInternalError);
  } else if (!has_body) {
    ex.resp_sent = true;
  }
  Wake(ex.client);
}

void H2Sessions::RespondError(uint32_t ex_idx, const stream::Decision& d, ErrorCause cause) {
  if (d.next == stream::Next::kAbort) {
    Reset(ex_idx);  // a response already under way: cut
    return;
  }
  LocalResponse(ex_idx, d.status, stream::ErrorBody(cause), ErrorCauseName(cause));
}

void H2Sessions::Reset(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  w_.LogExchange(ex, ex.status, "aborted");
  DropUpstream(ex_idx);
  Session& s = Of(ex.client);
  ex.h2_abandoned = true;
  s.session.ConsumeRequestData(ex.h2_stream, ReleaseList(ex.req_data));
  ReleaseList(ex.resp_data);
  if (!ex.h2_rst_sent) {
    ex.h2_rst_sent = true;
    s.session.ResetStream(ex.h2_stream, codec::http2::kInternalError);
  }
  Wake(ex.client);
}

void H2Sessions::Session::OnStreamClose(uint32_t handle, uint32_t error_code) {
  owner->OnStreamClose(*this, handle, error_code);
}

void H2Sessions::OnStreamClose(Session& s, uint32_t ex_idx, uint32_t error_code) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.resp_sent) w_.LogExchange(ex, ex.status, {});  // no-op once logged (local answers)
  if (!ex.resp_sent && !ex.h2_abandoned) {
    // The client reset the stream (or the connection failed) before the response ended:
    // the upstream's work is cancelled with its connection.
    w_.stats_.CountError(ErrorCause::kClientReset);
    if (!TakeResetToken(s)) {
      w_.stats_.h2_connection_errors.Add();
      s.session.Terminate(codec::http2::kEnhanceYourCalm);
    }
    w_.LogExchange(ex, ex.status,
                   error_code == codec::http2::kCancel ? "client_cancel" : "client_reset");
  }
  DropUpstream(ex_idx);
  Unlink(s, ex_idx);
  FreeStream(ex_idx);
  if (--s.open == 0) {
    w_.stats_.client_idle.Add();
    Conn& c = w_.conns_.Get(s.conn);
    w_.timers_.Arm(w_.draining_ ? w_.t_drain_idle_ : w_.t_client_idle_[c.owner], s.conn,
                   w_.NowMs());
  }
}

bool H2Sessions::TakeResetToken(Session& s) {
  uint32_t now = w_.NowMs();
  uint32_t refill = (now - s.reset_refill_ms) * kResetPerSecond / 1000;
  if (refill != 0) {
    s.reset_tokens = std::min(kResetBurst, s.reset_tokens + refill);
    s.reset_refill_ms = now;
  }
  if (s.reset_tokens == 0) return false;
  s.reset_tokens--;
  return true;
}

void H2Sessions::Unlink(Session& s, uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.h2_prev != kNil)
    w_.exchanges_.Get(ex.h2_prev).h2_next = ex.h2_next;
  else
    s.streams = ex.h2_next;
  if (ex.h2_next != kNil) w_.exchanges_.Get(ex.h2_next).h2_prev = ex.h2_prev;
  ex.h2_prev = ex.h2_next = kNil;
}

void H2Sessions::FreeStream(uint32_t ex_idx) {
  Exchange& ex = w_.exchanges_.Get(ex_idx);
  if (ex.h2_routed) {
    w_.FreeExchange(ex_idx);  // releases the body lists too
  } else {
    ReleaseList(ex.req_data);
    ReleaseList(ex.resp_data);
    if (ex.req_head_block != kNil) w_.blocks_.Free(ex.req_head_block);
    w_.exchanges_.Free(ex_idx);
  }
}

}  // namespace zproxy::dataplane
