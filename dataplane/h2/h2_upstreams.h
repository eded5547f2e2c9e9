// HTTP/2 towards upstreams (clusters with `protocol: http2`): the worker's side of the
// HTTP/2 client codec. One session per upstream connection, many exchanges on it: the
// cluster's ConnectionPool hands out a connection while it has fewer streams than the
// endpoint's SETTINGS_MAX_CONCURRENT_STREAMS, and opens another only when all are full.
//   upstream.cc          the connection: connect, bytes in, frames out, GOAWAY, PING,
//                        timeouts, failures (each stream's exchange decides: retry or
//                        answer, as for HTTP/1)
//   upstream_streams.cc  one stream: submit the request, its body from Exchange::req_data,
//                        the response head, body (Exchange::resp_data) and trailers back to
//                        the client (HTTP/2, or HTTP/1 with chunk framing when the length is
//                        unknown)
//
// Flow control both ways per stream: the upstream's window opens as the client takes the
// response, the request body is pulled from what the client sent (and its window opens
// as it goes out), so one slow stream never blocks the connection's others.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "dataplane/codec/http2/client_session.h"
#include "dataplane/h2/h2_sessions.h"
#include "dataplane/http/message.h"
#include "dataplane/stream/proxy_stream.h"
#include "dataplane/worker/slab.h"

namespace zproxy::dataplane {

class Worker;
struct Exchange;
struct InSlice;

class H2Upstreams {
 public:
  explicit H2Upstreams(Worker& worker) : w_(worker) {}
  H2Upstreams(const H2Upstreams&) = delete;
  H2Upstreams& operator=(const H2Upstreams&) = delete;

  // --- upstream.cc
  // A connection of an http2 cluster is being opened for ex_idx: its session (started
  // once connected) and its first waiting exchange.
  void Opening(uint32_t up, uint32_t ex_idx);
  // The connect completed (res < 0: it failed: every waiting exchange fails over).
  void OnConnected(uint32_t up, int res);
  // Connecting failed (TCP or TLS): waiting exchanges go elsewhere or get `cause`.
  void FailConnect(uint32_t up, ErrorCause cause);
  void OnInput(uint32_t up);
  // Room in the connection's output queue again, or something to send.
  void Wake(uint32_t up);
  void FlushPending();
  void OnTimeout(uint32_t up);
  // Idle pooled connections are PINGed (half the cluster's idle timeout, at most every
  // 10 s); one that does not answer within read_timeout_ms is closed before a request
  // finds it dead.
  void OnTick();
  // The connection broke (EOF, reset, send error): its streams fail with `cause`.
  void Fail(uint32_t up, ErrorCause cause);
  // From CloseConn: streams still on the connection fail (upstream closed), the session
  // goes away.
  void Teardown(uint32_t up);

  // --- upstream_streams.cc
  // The exchange's request goes on `up` (now, or when the connection is up).
  void Attach(uint32_t ex_idx, uint32_t up);
  // The exchange is done with its stream (complete), or gives it up (cancel: RST_STREAM).
  void Release(uint32_t ex_idx, bool cancel);
  // More request body is in Exchange::req_data (or the request ended).
  void ResumeRequest(uint32_t ex_idx);
  // The client took n bytes of the response from Exchange::resp_data.
  void ConsumedResponse(uint32_t ex_idx, size_t n);
  // HTTP/1 client: response data into its queue (chunk-framed if unknown length).
  void PumpH1Response(uint32_t ex_idx);
  // HTTP/1 client: its request body, decoded, into Exchange::req_data.
  void TakeH1RequestBody(uint32_t ex_idx);
  // HTTP/2 client: the response's trailers (empty: none).
  std::span<const http::Field> Trailers(uint32_t ex_idx);

 private:
  struct Session : codec::http2::ClientHandler {
    H2Upstreams* owner = nullptr;
    uint32_t conn = 0;
    codec::http2::ClientSession session;
    uint32_t streams = kNil;  // exchanges on this connection (Exchange::up_next)
    uint32_t count = 0;
    FrameGather out;
    bool connected = false;
    bool flushing = false;
    bool again = false;
    bool scheduled = false;
    bool draining = false;  // GOAWAY received: no new streams
    uint32_t last_input_ms = 0;
    uint32_t ping_sent_ms = 0;  // 0: no PING outstanding
    void Reset() {
      last_input_ms = ping_sent_ms = 0;
      streams = kNil;
      count = 0;
      out = FrameGather{};
      connected = flushing = again = scheduled = draining = false;
    }

    codec::http2::HeaderSpace AcquireHeaderSpace() override;
    void ReleaseHeaderSpace(codec::http2::HeaderSpace space) override;
    void OnResponseHead(uint32_t ex, http::ResponseHead& head, bool end_stream) override;
    void OnResponseData(uint32_t ex, std::string_view data) override;
    void OnResponseTrailers(uint32_t ex, std::span<http::Field> fields) override;
    void OnResponseEnd(uint32_t ex) override;
    void OnStreamClose(uint32_t ex, uint32_t error_code) override;
    void OnGoaway(uint32_t error_code) override;
    void OnSettings() override;
    bool WriteFrames(std::string_view bytes) override;
    size_t RequestDataReady(uint32_t ex, size_t max, bool* last) override;
    bool WriteData(uint32_t ex, std::string_view frame_head, size_t len) override;
  };

  Session& Of(uint32_t up);
  void Flush(uint32_t up);
  void Link(Session& s, uint32_t ex_idx);
  void Unlink(Session& s, uint32_t ex_idx);
  // Submits a linked exchange's request (the connection is up).
  void Submit(Session& s, uint32_t ex_idx);
  // Takes the exchange off its connection: its stream slot back to the pool.
  void Detach(uint32_t ex_idx);
  // Fails every stream of the connection; retry: those never sent may go elsewhere.
  void FailAll(Session& s, ErrorCause cause, bool retry);
  // The exchange's request goes again, on another (or a new) connection: it was refused
  // unprocessed, or found its reused connection dead. false: no endpoint to take it.
  bool Resubmit(uint32_t ex_idx);
  void FinishResponse(uint32_t ex_idx);
  void OnStreamClose(Session& s, uint32_t ex_idx, uint32_t error_code);
  bool WriteData(Session& s, uint32_t ex_idx, std::string_view frame_head, size_t len);

  Worker& w_;
  Slab<Session, 64> sessions_;
  std::vector<std::pair<uint32_t, uint16_t>> pending_;
  const InSlice* feeding_ = nullptr;
  http::Field trailer_fields_[64];
  friend struct Session;
};

}  // namespace zproxy::dataplane
