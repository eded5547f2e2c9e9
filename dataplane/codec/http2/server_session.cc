#include "dataplane/codec/http2/server_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "dataplane/codec/http2/header_block.h"

namespace zproxy::codec::http2 {

namespace {

using Block = HeaderBlock;

ServerSession* Self(void* user_data) { return static_cast<ServerSession*>(user_data); }

bool Announced(nghttp2_session* session, int32_t stream, uint32_t* handle) {
  return HandleOf(session, stream, handle);
}

}  // namespace

// Trailers as a HEADERS frame with END_STREAM (nghttp2 copies the fields).
bool SubmitFields(nghttp2_session* session, int32_t stream, std::span<const http::Field> fields,
                  ServerHandler* handler) {
  HeaderSpace space = handler->AcquireHeaderSpace();
  size_t max = space.cap / sizeof(nghttp2_nv);
  if (space.data == nullptr || fields.size() > max) {
    if (space.data != nullptr) handler->ReleaseHeaderSpace(space);
    return false;
  }
  auto* nv = reinterpret_cast<nghttp2_nv*>(space.data);
  for (size_t i = 0; i < fields.size(); i++) {
    const http::Field& f = fields[i];
    nv[i] = {const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(f.name.data())),
             const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(f.value.data())), f.name.size(),
             f.value.size(), NGHTTP2_NV_FLAG_NONE};
  }
  int rv = nghttp2_submit_trailer(session, stream, nv, fields.size());
  handler->ReleaseHeaderSpace(space);
  return rv == 0;
}

struct Callbacks {
  static Block* BlockFor(ServerSession* s, int32_t stream) {
    return s->block_ != nullptr && s->block_->stream == stream ? s->block_ : nullptr;
  }

  static void ReleaseBlock(ServerSession* s) {
    if (s->block_ == nullptr) return;
    HeaderSpace space = s->block_->space;
    s->block_->~HeaderBlock();
    s->block_ = nullptr;
    s->handler_->ReleaseHeaderSpace(space);
  }

  // RFC 9113 §5.1.1: a client's new stream id must be larger than every one it used.
  // nghttp2 ignores a HEADERS on a lower, never used id; that is a connection error.
  // (A HEADERS on a recently used id is nghttp2's to judge: STREAM_CLOSED.)
  static int OnBeginFrame(nghttp2_session* session, const nghttp2_frame_hd* hd, void* user_data) {
    ServerSession* s = Self(user_data);
    if (hd->type != NGHTTP2_HEADERS || (hd->stream_id & 1) == 0 ||
        hd->stream_id >= s->max_stream_) {
      return 0;
    }
    if (nghttp2_session_get_stream_user_data(session, hd->stream_id) != nullptr) return 0;
    for (int32_t id : s->recent_streams_) {
      if (id == hd->stream_id) return 0;
    }
    nghttp2_session_terminate_session(session, NGHTTP2_PROTOCOL_ERROR);
    return 0;
  }

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    ServerSession* s = Self(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;  // trailers: not forwarded (yet), so not stored
    }
    s->max_stream_ = std::max(s->max_stream_, frame->hd.stream_id);
    s->recent_streams_[s->recent_next_++ % ServerSession::kRecentStreams] = frame->hd.stream_id;
    ReleaseBlock(s);  // a block left by a stream nghttp2 refused mid-way
    HeaderSpace space = s->handler_->AcquireHeaderSpace();
    Block* b = HeaderBlock::Place(space, frame->hd.stream_id, s->settings_.max_fields,
                                  s->settings_.max_header_bytes);
    if (b == nullptr) {
      if (space.data != nullptr) s->handler_->ReleaseHeaderSpace(space);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // resets the stream
    }
    s->block_ = b;
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data) {
    Block* b = BlockFor(Self(user_data), frame->hd.stream_id);
    if (b == nullptr || b->refused != 0) return 0;  // trailers, or already refused
    b->list_size += namelen + valuelen + 32;
    if (b->list_size > Self(user_data)->settings_.max_header_bytes) {
      b->Refuse(431, "request head larger than max_header_bytes");
      return 0;
    }
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    if (!n.empty() && n[0] == ':') {
      // nghttp2 checked the pseudo-fields (known, once each, before the others).
      std::string_view v = b->Copy(value, valuelen);
      if (n == ":method")
        b->method = v;
      else if (n == ":scheme")
        b->scheme = v;
      else if (n == ":authority")
        b->authority = v;
      else if (n == ":path")
        b->path = v;
      else if (n == ":protocol")
        b->protocol = v;
      return 0;
    }
    // TE (only "trailers" passes nghttp2's checks) is hop-by-hop towards HTTP/1.
    if (n == "te") return 0;
    if (b->count == b->max_fields) {
      b->Refuse(431, "more request fields than max_headers");
      return 0;
    }
    std::string_view nv = b->Copy(name, namelen);
    std::string_view vv = b->Copy(value, valuelen);
    if (b->refused != 0) return 0;
    if (n == "host") {
      b->host = vv;  // the authority when :authority is absent; never forwarded twice
      return 0;
    }
    if (n == "cookie") b->cookies++;
    b->fields[b->count++] = http::Field{nv, vv};
    return 0;
  }

  // RFC 9113 §8.2.3: cookie crumbs become one field again ("; "-joined) for HTTP/1.
  static void JoinCookies(Block* b) {
    if (b->cookies < 2) return;
    size_t first = b->count;
    size_t total = 0;
    for (size_t i = 0; i < b->count; i++) {
      if (b->fields[i].name != "cookie") continue;
      if (first == b->count) first = i;
      total += b->fields[i].value.size() + 2;
    }
    if (total - 2 > b->byte_cap - b->used) {
      b->Refuse(431, "request head larger than max_header_bytes");
      return;
    }
    char* dst = b->bytes + b->used;
    size_t len = 0;
    size_t out = 0;
    for (size_t i = 0; i < b->count; i++) {
      http::Field f = b->fields[i];
      if (f.name == "cookie") {
        if (len != 0) {
          memcpy(dst + len, "; ", 2);
          len += 2;
        }
        memcpy(dst + len, f.value.data(), f.value.size());
        len += f.value.size();
        if (i != first) continue;
      }
      b->fields[out++] = f;
    }
    b->used += len;
    b->count = out;
    for (size_t i = 0; i < b->count; i++) {
      if (b->fields[i].name == "cookie") b->fields[i].value = std::string_view(dst, len);
    }
  }

  static void DeliverHead(ServerSession* s, nghttp2_session* session, Block* b, bool end_stream) {
    int32_t stream = b->stream;
    JoinCookies(b);
    http::RequestHead head;
    head.method = b->method;
    head.method_id = http::MethodFromToken(b->method);
    head.authority = b->authority.empty() ? b->host : b->authority;
    head.protocol = "HTTP/2.0";
    if (head.method_id == http::Method::kConnect) {
      // RFC 9113 §8.5: the target is the authority; nghttp2 checked there is no :path.
      head.target = head.path_and_query = head.authority;
    } else {
      head.target = head.path_and_query = b->path;
      size_t q = b->path.find('?');
      head.path = q == std::string_view::npos ? b->path : b->path.substr(0, q);
    }
    head.upgrade = b->protocol;  // extended CONNECT (RFC 8441)
    if (head.authority.empty() && b->refused == 0) b->Refuse(400, "request without :authority");
    head.fields = std::span<http::Field>(b->fields, b->count);
    if (!end_stream) {
      head.body.framing = http::Framing::kChunked;  // until a Content-Length says otherwise
      for (const http::Field& f : head.fields) {
        if (f.name != "content-length") continue;
        // nghttp2 checked it is one non-negative number (and will check the DATA sum).
        uint64_t n = 0;
        for (char c : f.value) n = n * 10 + static_cast<uint64_t>(c - '0');
        head.body.framing = http::Framing::kLength;
        head.body.length = n;
      }
    }
    uint32_t handle = b->refused != 0 ? s->handler_->OnRequestRefused(stream, b->refused, b->why)
                                      : s->handler_->OnRequestHead(stream, head, end_stream);
    nghttp2_session_set_stream_user_data(session, stream, HandleData(handle));
  }

  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    ServerSession* s = Self(user_data);
    int32_t stream = frame->hd.stream_id;
    bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS:
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          Block* b = BlockFor(s, stream);
          if (b == nullptr) return 0;
          DeliverHead(s, session, b, end_stream);
          ReleaseBlock(s);
          return 0;
        }
        break;
      case NGHTTP2_DATA:
        break;
      default:
        return 0;
    }
    uint32_t handle;
    if (end_stream && Announced(session, stream, &handle)) s->handler_->OnRequestEnd(handle);
    return 0;
  }

  static int OnDataChunk(nghttp2_session* session, uint8_t, int32_t stream, const uint8_t* data,
                         size_t len, void* user_data) {
    uint32_t handle;
    if (!Announced(session, stream, &handle)) {
      // A refused stream's body: nobody takes it, so its window comes back at once.
      nghttp2_session_consume(session, stream, len);
      return 0;
    }
    Self(user_data)->handler_->OnRequestData(
        handle, std::string_view(reinterpret_cast<const char*>(data), len));
    return 0;
  }

  static int OnStreamClose(nghttp2_session* session, int32_t stream, uint32_t error_code,
                           void* user_data) {
    ServerSession* s = Self(user_data);
    if (BlockFor(s, stream) != nullptr) ReleaseBlock(s);
    uint32_t handle;
    if (Announced(session, stream, &handle)) s->handler_->OnStreamClose(handle, error_code);
    return 0;
  }

  static ssize_t Send(nghttp2_session*, const uint8_t* data, size_t len, int, void* user_data) {
    if (!Self(user_data)->handler_->WriteFrames(
            std::string_view(reinterpret_cast<const char*>(data), len))) {
      return NGHTTP2_ERR_WOULDBLOCK;
    }
    return static_cast<ssize_t>(len);
  }

  static int SendData(nghttp2_session* session, nghttp2_frame* frame, const uint8_t* framehd,
                      size_t len, nghttp2_data_source*, void* user_data) {
    // No padding is ever asked for (no select_padding callback), so the frame is the
    // head and the data.
    uint32_t handle;
    if (!Announced(session, frame->hd.stream_id, &handle)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (!Self(user_data)->handler_->WriteData(
            handle, std::string_view(reinterpret_cast<const char*>(framehd), 9), len)) {
      return NGHTTP2_ERR_WOULDBLOCK;
    }
    return 0;
  }

  static ssize_t ReadData(nghttp2_session* session, int32_t stream, uint8_t*, size_t max,
                          uint32_t* flags, nghttp2_data_source*, void* user_data) {
    ServerSession* s = Self(user_data);
    bool last = false;
    uint32_t handle;
    if (!Announced(session, stream, &handle)) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = s->handler_->ResponseDataReady(handle, max, &last);
    if (n == 0 && !last) return NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (last) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      std::span<const http::Field> trailers = s->handler_->ResponseTrailers(handle);
      if (!trailers.empty() && SubmitFields(session, stream, trailers, s->handler_)) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;  // the trailers' HEADERS ends it
      }
    }
    return static_cast<ssize_t>(n);
  }
};

ServerSession::~ServerSession() { Close(); }

void ServerSession::Close() {
  if (session_ == nullptr) return;
  Callbacks::ReleaseBlock(this);
  nghttp2_session_del(session_);
  session_ = nullptr;
  failed_ = false;
}

bool ServerSession::Start(const ServerSettings& settings, ServerHandler* handler) {
  settings_ = settings;
  handler_ = handler;
  max_stream_ = 0;
  recent_next_ = 0;
  for (int32_t& id : recent_streams_) id = 0;
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, Callbacks::OnBeginHeaders);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, Callbacks::OnBeginFrame);
  nghttp2_session_callbacks_set_on_header_callback(cb, Callbacks::OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, Callbacks::OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, Callbacks::OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, Callbacks::OnStreamClose);
  nghttp2_session_callbacks_set_send_callback(cb, Callbacks::Send);
  nghttp2_session_callbacks_set_send_data_callback(cb, Callbacks::SendData);
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    return false;
  }
  // Windows open only as request data is forwarded (ConsumeRequestData).
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_stream_reset_rate_limit(opt, settings.reset_burst, settings.reset_rate);
  // Bounds what a client's control frames can make us hold or answer.
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  int rv = nghttp2_session_server_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    session_ = nullptr;
    return false;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.max_header_bytes},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0) {
    return false;
  }
  // The connection window (65535 by default) grows to hold many streams' windows.
  if (settings.connection_window > 65535) {
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(settings.connection_window));
  }
  return true;
}

bool ServerSession::Receive(std::string_view in) {
  ssize_t n =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in.data()), in.size());
  // A block left incomplete stays for the next bytes (CONTINUATION); an error ends all.
  if (n < 0) {
    // E.g. a bad client preface: nghttp2 stops without a GOAWAY; send one (RFC 9113
    // §3.4: PROTOCOL_ERROR) so the client knows, and let the connection close after it.
    nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    failed_ = true;
    return false;
  }
  return true;
}

bool ServerSession::Send() { return nghttp2_session_send(session_) == 0; }

bool ServerSession::Finished() const {
  if (failed_) return nghttp2_session_want_write(session_) == 0;
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

namespace {

// The nghttp2 name/value array of a response head, built in `space`. nghttp2 copies it
// when submitting and lowercases the names on the way (HTTP/1 upstreams send any case;
// HTTP/2 requires lowercase).
size_t BuildNv(const http::ResponseHead& head, HeaderSpace space, nghttp2_nv** out) {
  size_t n = head.fields.size() + 1;
  if (space.data == nullptr || n * sizeof(nghttp2_nv) + 4 > space.cap) return 0;
  auto* nv = reinterpret_cast<nghttp2_nv*>(space.data);
  char* status = space.data + n * sizeof(nghttp2_nv);
  status[0] = static_cast<char>('0' + head.status / 100 % 10);
  status[1] = static_cast<char>('0' + head.status / 10 % 10);
  status[2] = static_cast<char>('0' + head.status % 10);
  auto bytes = [](std::string_view s) {
    return const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(s.data()));
  };
  nv[0] = {bytes(":status"), reinterpret_cast<uint8_t*>(status), 7, 3, NGHTTP2_NV_FLAG_NONE};
  size_t count = 1;
  for (const http::Field& f : head.fields) {
    nv[count++] = {bytes(f.name), bytes(f.value), f.name.size(), f.value.size(),
                   NGHTTP2_NV_FLAG_NONE};
  }
  *out = nv;
  return count;
}

}  // namespace

bool ServerSession::SubmitResponse(int32_t stream, const http::ResponseHead& head, bool has_body) {
  HeaderSpace space = handler_->AcquireHeaderSpace();
  nghttp2_nv* nv = nullptr;
  size_t n = BuildNv(head, space, &nv);
  int rv = -1;
  if (n != 0) {
    nghttp2_data_provider provider{};
    provider.read_callback = Callbacks::ReadData;
    rv = nghttp2_submit_response(session_, stream, nv, n, has_body ? &provider : nullptr);
  }
  handler_->ReleaseHeaderSpace(space);
  return rv == 0;
}

bool ServerSession::SubmitInterim(int32_t stream, const http::ResponseHead& head) {
  HeaderSpace space = handler_->AcquireHeaderSpace();
  nghttp2_nv* nv = nullptr;
  size_t n = BuildNv(head, space, &nv);
  int rv = -1;
  if (n != 0)
    rv = nghttp2_submit_headers(session_, NGHTTP2_FLAG_NONE, stream, nullptr, nv, n, nullptr);
  handler_->ReleaseHeaderSpace(space);
  return rv >= 0;
}

void ServerSession::ResumeResponseData(int32_t stream) {
  nghttp2_session_resume_data(session_, stream);
}

void ServerSession::ConsumeRequestData(int32_t stream, size_t n) {
  if (n != 0) nghttp2_session_consume(session_, stream, n);
}

void ServerSession::ResetStream(int32_t stream, uint32_t error_code) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, error_code);
}

void ServerSession::Shutdown() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
}

void ServerSession::Terminate(uint32_t error_code) {
  nghttp2_session_terminate_session(session_, error_code);
}

}  // namespace zproxy::codec::http2
