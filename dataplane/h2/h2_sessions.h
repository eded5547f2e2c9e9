// HTTP/2 towards clients: the worker's side of the HTTP/2 server codec
// (dataplane/codec/http2). One session per client connection that spoke the h2c preface
// (prior knowledge, plaintext listeners) or chose "h2" by ALPN; each of its streams is an
// exchange, the same proxy stream an HTTP/1 request is (routing, header policy, upstream
// pick, retries, timeouts, access log), with the client-facing steps done here:
//   session.cc   the session: start, received bytes in, frames out, timeouts, drain, end
//   streams.cc   one stream: its request head and body towards the upstream, the
//                response head and body back, local answers (404, 502, gRPC statuses),
//                resets
//
// Bodies move without copies where they can: request DATA stays in the receive buffer
// it arrived in (a slice in Exchange::req_data) until the upstream's queue takes it;
// response data stays in the upstream's buffer (Exchange::resp_data) until nghttp2 asks
// for it, and then goes out behind a 9-byte frame head (NGHTTP2_DATA_FLAG_NO_COPY).
// Flow control bounds both: the client's window opens only as its data is forwarded,
// and an upstream is read only while its stream has room.
//
// Owns: the sessions (a pool; an HTTP/1 connection has none). Uses the worker's
// machinery as its friend, like Tunnels and ConnectRequests.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "dataplane/codec/http2/server_session.h"
#include "dataplane/http/message.h"
#include "dataplane/stream/proxy_stream.h"
#include "dataplane/worker/slab.h"

namespace zproxy::dataplane {

class Worker;
struct Exchange;
struct InSlice;
struct SliceList;

// Control and header frames nghttp2 writes (copied: they live in its buffer), gathered
// into one block per queue item; both sides' sessions have one.
struct FrameGather {
  uint32_t block = kNil;
  uint32_t len = 0;
};

class H2Sessions {
 public:
  explicit H2Sessions(Worker& worker) : w_(worker) {}
  H2Sessions(const H2Sessions&) = delete;
  H2Sessions& operator=(const H2Sessions&) = delete;

  // --- session.cc
  // Whether a plaintext client's first bytes are the HTTP/2 connection preface: 1 yes,
  // 0 no, -1 too few bytes to tell.
  static int MatchPreface(std::string_view data);
  // Starts HTTP/2 on a client connection. false: nghttp2 could not start (closed).
  bool Start(uint32_t conn_idx);
  // The client's received bytes (all of them) into the session.
  void OnInput(uint32_t conn_idx);
  // Frames out, for every session something happened to since the last call (the loop
  // calls it once per batch of completions): the session writes, the socket sends,
  // waiting streams read on. Deferred so that nghttp2 never runs inside a callback of
  // its own or under an exchange the caller is still using, and frames batch.
  void FlushPending();
  // Something happened to a session: it gets flushed at the end of this batch.
  void Wake(uint32_t conn_idx);
  // The client connection's idle or header timer fired.
  void OnTimeout(uint32_t conn_idx);
  // Draining: GOAWAY; open streams finish, then the connection closes.
  void Drain(uint32_t conn_idx);
  // The connection is closing: every stream ends, its upstream closed.
  void Teardown(uint32_t conn_idx);

  // --- streams.cc: the proxy stream's steps towards an HTTP/2 client.
  void SendInterim(uint32_t ex_idx, const http::ResponseHead& head);
  void SendResponseHead(uint32_t ex_idx, const http::ResponseHead& head, bool has_body);
  // Room for more response data in the stream (else the upstream waits).
  bool ResponseHasRoom(const Exchange& ex) const;
  // Response body bytes (`data`, inside slice `s` of the upstream's input).
  void PushResponseData(uint32_t ex_idx, const InSlice& s, std::string_view data);
  // The response body is complete (the upstream may go back to its pool).
  void EndResponse(uint32_t ex_idx);
  // Trailer lines of an HTTP/1 chunked response ("Name: v\r\n"..., possibly a piece):
  // gathered, and sent as the stream's trailers (HEADERS) after its last DATA.
  void AddTrailerLines(uint32_t ex_idx, std::string_view lines);
  // zproxy's own answer (no route, upstream failures, limits); gRPC requests get a
  // trailers-only gRPC status instead. The upstream, if any, is closed.
  // `extras`: what a route's own answers add (redirect Location, direct response content type,
  // response header changes); HEAD requests get no body.
  static constexpr size_t kMaxLocalExtraFields = 72;
  struct LocalExtras {
    std::string_view content_type;
    std::span<const http::Field> fields;
    bool omit_body;          // no initializer: a default argument below value-initializes it
    uint32_t retry_after_s;  // != 0: Retry-After (429 rate limited)
  };
  void LocalResponse(uint32_t ex_idx, int status, std::string_view body, std::string_view note,
                     const LocalExtras& extras = LocalExtras{});
  // An upstream failure answered per the stream's decision (the status's gRPC mapping).
  void RespondError(uint32_t ex_idx, const stream::Decision& d, ErrorCause cause);
  // The exchange cannot complete: RST_STREAM, the upstream closed.
  void Reset(uint32_t ex_idx);
  // A CONNECT's target accepted (RFC 9113 §8.5): 200, then the stream's DATA are the
  // tunnel's bytes both ways, END_STREAM its half-closes.
  void EstablishTunnel(uint32_t ex_idx);
  // Request body data towards the upstream, as far as its queue has room.
  void PumpRequestBody(uint32_t ex_idx);
  // n bytes of the stream's request body went upstream: its window opens again.
  void ConsumedRequest(uint32_t ex_idx, size_t n);

  // Body lists (Exchange::req_data, resp_data), shared with the HTTP/2 upstream side.
  void PushSlice(SliceList& list, const InSlice& s);
  // `data` (inside slice s) onto the list: a reference to its buffer, or a copy.
  void PushSliceOf(SliceList& list, const InSlice& s, std::string_view data);
  // Queues the first len bytes of the list towards a connection (one buffer's piece
  // as is, or gathered into a block) and consumes them.
  void MoveData(SliceList& list, uint32_t to, size_t len);
  // Releases a list's slices; returns their byte count.
  uint64_t ReleaseList(SliceList& list);

  // Shared with the upstream side (h2_upstreams.h): frames gathered towards a
  // connection's queue (false: no room in it now), the gathered block queued, and the
  // space the codec borrows to decode a header block.
  bool GatherFrames(uint32_t conn, FrameGather& out, std::string_view bytes);
  void QueueGathered(uint32_t conn, FrameGather& out);
  void DropGathered(FrameGather& out);
  codec::http2::HeaderSpace LendHeaderSpace();
  void TakeBackHeaderSpace(codec::http2::HeaderSpace space);

 private:
  // Streams a client may cancel in a burst, and per second after it. Browsers cancel a
  // few on navigation; an attacker opening and resetting streams in a loop (each costing
  // an upstream request) runs dry within a fraction of a second.
  static constexpr uint32_t kResetBurst = 100;
  static constexpr uint32_t kResetPerSecond = 20;
  // A session and the handler nghttp2 calls back (it forwards to this class).
  struct Session : codec::http2::ServerHandler {
    H2Sessions* owner = nullptr;
    uint32_t conn = 0;
    codec::http2::ServerSession session;
    uint32_t streams = kNil;  // first exchange of the list (Exchange::h2_next)
    uint32_t open = 0;
    FrameGather out;
    bool flushing = false;
    bool again = false;
    bool scheduled = false;  // in pending_
    // Rapid reset (CVE-2023-44487): streams the client cancels before their response,
    // a token bucket (kResetBurst, refilled kResetPerSecond); empty: GOAWAY
    // ENHANCE_YOUR_CALM.
    uint32_t reset_tokens = 0;
    uint32_t reset_refill_ms = 0;
    void Reset() {
      reset_tokens = 0;
      reset_refill_ms = 0;
      streams = kNil;
      open = 0;
      out = FrameGather{};
      flushing = again = scheduled = false;
    }

    codec::http2::HeaderSpace AcquireHeaderSpace() override;
    void ReleaseHeaderSpace(codec::http2::HeaderSpace space) override;
    uint32_t OnRequestHead(int32_t stream, http::RequestHead& head, bool end_stream) override;
    uint32_t OnRequestRefused(int32_t stream, int status, std::string_view why) override;
    void OnRequestData(uint32_t handle, std::string_view data) override;
    void OnRequestEnd(uint32_t handle) override;
    void OnStreamClose(uint32_t handle, uint32_t error_code) override;
    bool WriteFrames(std::string_view bytes) override;
    size_t ResponseDataReady(uint32_t handle, size_t max, bool* last) override;
    std::span<const http::Field> ResponseTrailers(uint32_t handle) override;
    bool WriteData(uint32_t handle, std::string_view frame_head, size_t len) override;
  };

  Session& Of(uint32_t conn_idx);
  // A client cancelled a stream before its response: false once it did so too often.
  bool TakeResetToken(Session& s);
  // --- streams.cc
  uint32_t OpenStream(Session& s, int32_t stream);
  void StartRequest(uint32_t ex_idx, http::RequestHead& head, bool end_stream);
  void OnRequestData(uint32_t ex_idx, std::string_view data);
  void OnStreamClose(Session& s, uint32_t ex_idx, uint32_t error_code);
  size_t ResponseDataReady(uint32_t ex_idx, size_t max, bool* last);
  bool WriteData(Session& s, uint32_t ex_idx, std::string_view frame_head, size_t len);
  // Closes the exchange's upstream connection (the stream stays until nghttp2 ends it).
  void DropUpstream(uint32_t ex_idx);
  void Unlink(Session& s, uint32_t ex_idx);
  // HTTP/1 trailer lines gathered in the exchange's trailer block -> its field block.
  void ConvertTrailerLines(Exchange& ex);
  // CONNECT: the client's END_STREAM becomes the target's FIN once its bytes are out.
  void MaybeShutdownUpstream(uint32_t ex_idx);
  void FreeStream(uint32_t ex_idx);
  // --- session.cc
  void Flush(uint32_t conn_idx);

  Worker& w_;
  Slab<Session, 64> sessions_;
  // Sessions to flush at the end of the batch: connection and its generation (a closed
  // connection's slot may be reused by then). Keeps its capacity: no allocation.
  std::vector<std::pair<uint32_t, uint16_t>> pending_;
  // The input slice being fed to a session: request DATA are views into it.
  const InSlice* feeding_ = nullptr;
  friend struct Session;
};

}  // namespace zproxy::dataplane
