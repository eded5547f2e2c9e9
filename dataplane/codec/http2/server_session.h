// The server side of the HTTP/2 codec: one session per client connection, on nghttp2
// (framing, HPACK, flow control, stream states and RFC 9113 §8 message checks). Bytes in
// become protocol-neutral request heads, body data and stream ends; response heads and
// body data go out as frames. No sockets, no TLS, no proxy logic: the handler (the
// worker) owns the bytes and decides what to do with each stream.
//
// Zero copy where it pays: request DATA is handed up as views into the received bytes
// (the caller's buffer), and response DATA is written by the handler itself after a
// 9-byte frame head (NGHTTP2_DATA_FLAG_NO_COPY), so body bytes are never copied here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/http/message.h"

struct nghttp2_session;

namespace zproxy::codec::http2 {

struct HeaderBlock;

struct ServerSettings {
  uint32_t max_concurrent_streams = 100;
  // Per stream receive window. Request data is acknowledged (WINDOW_UPDATE) only once the
  // handler forwarded it (ConsumeRequestData), so a stalled upstream stalls its stream
  // only, and what a stream can make us buffer is bounded by this.
  uint32_t stream_window = 256 * 1024;
  // The connection's receive window: room for many streams' windows at once, so one slow
  // stream does not block the others (no head-of-line blocking).
  uint32_t connection_window = 16 * 1024 * 1024;
  // The request head's fields, decoded, at most (names + values + 32 per field, as
  // SETTINGS_MAX_HEADER_LIST_SIZE counts them), and at most this many fields.
  uint32_t max_header_bytes = 65536;
  uint32_t max_fields = 128;
  // Rapid reset (CVE-2023-44487): streams the client may reset per second (burst, then
  // rate) before the connection is closed with GOAWAY ENHANCE_YOUR_CALM.
  // (nghttp2's own limit, a backstop behind the proxy's, which answers ENHANCE_YOUR_CALM.)
  uint32_t reset_burst = 1000;
  uint32_t reset_rate = 330;
};

// Storage for the header block being decoded: the handler lends it at the block's
// start and gets it back at its end, so an idle session holds none.
struct HeaderSpace {
  char* data = nullptr;
  size_t cap = 0;
  uint32_t id = 0;  // the lender's own tag (e.g. its block index)
};

class ServerHandler {
 public:
  virtual ~ServerHandler() = default;

  virtual HeaderSpace AcquireHeaderSpace() = 0;
  virtual void ReleaseHeaderSpace(HeaderSpace space) = 0;

  // A request head, checked by RFC 9113 §8 (pseudo-fields, connection-specific fields,
  // TE, field names and values) and mapped to a neutral head: :authority (or Host) is the
  // authority, Cookie crumbs are joined, Host and TE are consumed. Views are valid during
  // the call only. end_stream: no body follows. The handler answers the stream (a
  // response or a reset) now or later, and returns its handle for the stream: the later
  // calls about the stream name it by that handle.
  virtual uint32_t OnRequestHead(int32_t stream, http::RequestHead& head, bool end_stream) = 0;
  // A request head zproxy will not take: larger than max_header_bytes or max_fields
  // (status 431), or without what the request needs (400). The handler answers it with
  // `status`; nothing of it can be forwarded. `why` names the reason, for the log.
  virtual uint32_t OnRequestRefused(int32_t stream, int status, std::string_view why) = 0;
  // Request body data: a view into the bytes given to Receive(). Acknowledge it to the
  // client with ConsumeRequestData once it was forwarded.
  virtual void OnRequestData(uint32_t handle, std::string_view data) = 0;
  // The request ended (END_STREAM; trailers, if any, are not forwarded yet).
  virtual void OnRequestEnd(uint32_t handle) = 0;
  // The stream is gone: answered and sent (error_code 0), or reset by either side.
  // Called once per stream OnRequestHead or OnRequestRefused was called for, but not
  // when the session is destroyed with streams open (the handler tracks those).
  virtual void OnStreamClose(uint32_t handle, uint32_t error_code) = 0;

  // Output. Bytes of control and header frames, to be copied; false: no room now (the
  // session keeps them and Send() resumes later).
  virtual bool WriteFrames(std::string_view bytes) = 0;
  // Response body: how many bytes of the stream's body are ready, at most `max`, and
  // whether they are its last (then *last = true). 0 and not last: none yet
  // (ResumeResponseData when more arrive).
  virtual size_t ResponseDataReady(uint32_t handle, size_t max, bool* last) = 0;
  // Asked once the last body bytes went: trailers to end the response with (empty: the
  // last DATA frame ends the stream). The fields stay valid until the next call.
  virtual std::span<const http::Field> ResponseTrailers(uint32_t handle) = 0;
  // Writes a DATA frame: the 9-byte frame head, then `len` bytes of the stream's body.
  // false: no room now.
  virtual bool WriteData(uint32_t handle, std::string_view frame_head, size_t len) = 0;
};

class ServerSession {
 public:
  ServerSession() = default;
  ~ServerSession();
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // Queues the server preface (SETTINGS). false if nghttp2 could not start (memory).
  bool Start(const ServerSettings& settings, ServerHandler* handler);
  // Frees nghttp2's state (no callbacks); Start may follow (pooled sessions).
  void Close();
  bool started() const { return session_ != nullptr; }
  // Feeds received bytes; all of them are consumed. false: a connection error (a GOAWAY
  // is queued: Send(), then close once it is out).
  bool Receive(std::string_view in);
  // Writes what is ready through the handler; false on a fatal session error.
  bool Send();
  // Nothing more to read or write: the connection can close (after GOAWAY, or the peer's).
  bool Finished() const;

  // A final response head; has_body: DATA follows (ResponseDataReady), else END_STREAM.
  bool SubmitResponse(int32_t stream, const http::ResponseHead& head, bool has_body);
  // An interim (1xx) response head.
  bool SubmitInterim(int32_t stream, const http::ResponseHead& head);
  // More response data is ready for a stream whose DATA was deferred.
  void ResumeResponseData(int32_t stream);
  // n bytes of the stream's request body were forwarded: open the client's window again.
  void ConsumeRequestData(int32_t stream, size_t n);
  // RST_STREAM with `error_code` (RFC 9113 §7).
  void ResetStream(int32_t stream, uint32_t error_code);
  // Graceful shutdown (draining): GOAWAY with the last stream id; open streams finish.
  void Shutdown();
  // Immediate GOAWAY with `error_code`; the connection closes once it is out.
  void Terminate(uint32_t error_code);

 private:
  nghttp2_session* session_ = nullptr;
  ServerHandler* handler_ = nullptr;
  ServerSettings settings_;
  HeaderBlock* block_ = nullptr;  // header block being decoded (one at a time per connection)
  bool failed_ = false;           // Receive failed: only the GOAWAY is left to send
  // The largest client stream id seen, and the last few (RFC 9113 §5.1.1 checks).
  static constexpr int kRecentStreams = 8;
  int32_t max_stream_ = 0;
  int32_t recent_streams_[kRecentStreams] = {};
  uint32_t recent_next_ = 0;
  friend struct Callbacks;
};

// The flow-control and protocol error codes of RFC 9113 §7, for ResetStream/Terminate.
enum ErrorCode : uint32_t {
  kNoError = 0x0,
  kProtocolError = 0x1,
  kInternalError = 0x2,
  kFlowControlError = 0x3,
  kRefusedStream = 0x7,
  kCancel = 0x8,
  kEnhanceYourCalm = 0xb,
};

}  // namespace zproxy::codec::http2
