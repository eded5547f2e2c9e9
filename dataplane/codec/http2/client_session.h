// The client side of the HTTP/2 codec: one session per upstream connection of a cluster
// with `protocol: http2`, on nghttp2. Requests go out as HEADERS (from a request block,
// request_block.h) and DATA the handler writes itself (no copy); responses come back as
// neutral heads, body data (views into the received bytes), trailers and ends. No
// sockets, no TLS, no proxy logic.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "dataplane/codec/http2/server_session.h"
#include "dataplane/http/message.h"

struct nghttp2_session;

namespace zproxy::codec::http2 {

struct ClientSettings {
  // Response data is acknowledged only once forwarded (ConsumeResponseData): a slow
  // client slows its own stream, not the connection's others.
  uint32_t stream_window = 256 * 1024;
  uint32_t connection_window = 16 * 1024 * 1024;
  uint32_t max_header_bytes = 65536;  // a response head (or trailers) larger: stream reset
  uint32_t max_fields = 128;
};

class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  virtual HeaderSpace AcquireHeaderSpace() = 0;
  virtual void ReleaseHeaderSpace(HeaderSpace space) = 0;

  // A response head: interim (1xx, more follow) or final. end_stream: no body. Views are
  // valid during the call only.
  virtual void OnResponseHead(uint32_t handle, http::ResponseHead& head, bool end_stream) = 0;
  // Response body data: a view into the bytes given to Receive(); acknowledge with
  // ConsumeResponseData once forwarded.
  virtual void OnResponseData(uint32_t handle, std::string_view data) = 0;
  // Trailers (the response ends with them; OnResponseEnd follows).
  virtual void OnResponseTrailers(uint32_t handle, std::span<http::Field> fields) = 0;
  virtual void OnResponseEnd(uint32_t handle) = 0;
  // The stream is gone: error_code 0 after a complete exchange, else the reset's code
  // (REFUSED_STREAM: never processed, e.g. above a GOAWAY's last stream id: safe to
  // retry elsewhere). Called once per submitted stream, also for those refused before
  // they were sent; not when the session is destroyed.
  virtual void OnStreamClose(uint32_t handle, uint32_t error_code) = 0;
  // The peer is going away: no new streams on this connection.
  virtual void OnGoaway(uint32_t error_code) = 0;
  // The peer's SETTINGS arrived (MaxConcurrentStreams may have changed).
  virtual void OnSettings() = 0;

  virtual bool WriteFrames(std::string_view bytes) = 0;
  // Request body: bytes ready (at most max), and whether they are the last.
  virtual size_t RequestDataReady(uint32_t handle, size_t max, bool* last) = 0;
  virtual bool WriteData(uint32_t handle, std::string_view frame_head, size_t len) = 0;
};

class ClientSession {
 public:
  ClientSession() = default;
  ~ClientSession();
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  // Queues the client preface and SETTINGS.
  bool Start(const ClientSettings& settings, ClientHandler* handler);
  void Close();
  bool started() const { return session_ != nullptr; }
  bool Receive(std::string_view in);
  bool Send();
  bool Finished() const;

  // A request from a request block (request_block.h); has_body: DATA follows
  // (RequestDataReady), else END_STREAM on HEADERS. Returns the stream id, or < 0 when
  // the session cannot take a stream now (GOAWAY received, ids exhausted, out of memory).
  int32_t SubmitRequest(std::string_view block, bool has_body, uint32_t handle);
  void ResumeRequestData(int32_t stream);
  void ConsumeResponseData(int32_t stream, size_t n);
  void ResetStream(int32_t stream, uint32_t error_code);
  bool Ping();
  // The peer's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS arrived).
  uint32_t MaxConcurrentStreams() const;
  // The peer's GOAWAY arrived, or the session failed: no new streams.
  bool Closing() const;

 private:
  nghttp2_session* session_ = nullptr;
  ClientHandler* handler_ = nullptr;
  ClientSettings settings_;
  HeaderBlock* block_ = nullptr;  // a response head or trailers being decoded
  bool goaway_ = false;
  friend struct ClientCallbacks;
};

}  // namespace zproxy::codec::http2
