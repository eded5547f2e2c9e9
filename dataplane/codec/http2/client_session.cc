#include "dataplane/codec/http2/client_session.h"

#include <nghttp2/nghttp2.h>

#include "dataplane/codec/http2/header_block.h"
#include "dataplane/codec/http2/request_block.h"

namespace zproxy::codec::http2 {
namespace {

ClientSession* Self(void* user_data) { return static_cast<ClientSession*>(user_data); }

}  // namespace

struct ClientCallbacks {
  static void ReleaseBlock(ClientSession* s) {
    if (s->block_ == nullptr) return;
    HeaderSpace space = s->block_->space;
    s->block_->~HeaderBlock();
    s->block_ = nullptr;
    s->handler_->ReleaseHeaderSpace(space);
  }

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    ClientSession* s = Self(user_data);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    ReleaseBlock(s);
    HeaderSpace space = s->handler_->AcquireHeaderSpace();
    s->block_ = HeaderBlock::Place(space, frame->hd.stream_id, s->settings_.max_fields,
                                   s->settings_.max_header_bytes);
    if (s->block_ == nullptr) {
      if (space.data != nullptr) s->handler_->ReleaseHeaderSpace(space);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                      void* user_data) {
    ClientSession* s = Self(user_data);
    HeaderBlock* b = s->block_;
    if (b == nullptr || b->stream != frame->hd.stream_id) return 0;
    // An upstream's head larger than we take resets its stream (502 to the client).
    if (!b->Count(namelen, valuelen, s->settings_.max_header_bytes)) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    std::string_view n(reinterpret_cast<const char*>(name), namelen);
    if (n == ":status") {
      // nghttp2 checked it is three digits.
      b->status =
          static_cast<uint16_t>((value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0'));
      return 0;
    }
    if (!n.empty() && n[0] == ':') return 0;
    if (!b->Add(name, namelen, value, valuelen)) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
  }

  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    ClientSession* s = Self(user_data);
    int32_t stream = frame->hd.stream_id;
    bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    uint32_t handle = 0;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        HeaderBlock* b = s->block_;
        if (b == nullptr || b->stream != stream || !HandleOf(session, stream, &handle)) return 0;
        std::span<http::Field> fields(b->fields, b->count);
        if (b->status != 0) {
          http::ResponseHead head;
          head.status = b->status;
          head.fields = fields;
          if (!end_stream && !head.interim()) {
            head.body.framing = http::Framing::kChunked;  // length unknown, ends with the stream
            for (const http::Field& f : fields) {
              if (f.name != "content-length") continue;
              uint64_t n = 0;
              for (char c : f.value) n = n * 10 + static_cast<uint64_t>(c - '0');
              head.body.framing = http::Framing::kLength;
              head.body.length = n;
            }
          }
          s->handler_->OnResponseHead(handle, head, end_stream);
        } else {
          s->handler_->OnResponseTrailers(handle, fields);
        }
        ReleaseBlock(s);
        break;
      }
      case NGHTTP2_DATA:
        if (!HandleOf(session, stream, &handle)) return 0;
        break;
      case NGHTTP2_GOAWAY:
        s->goaway_ = true;
        s->handler_->OnGoaway(frame->goaway.error_code);
        return 0;
      case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK)) s->handler_->OnSettings();
        return 0;
      default:
        return 0;
    }
    if (end_stream) s->handler_->OnResponseEnd(handle);
    return 0;
  }

  static int OnDataChunk(nghttp2_session* session, uint8_t, int32_t stream, const uint8_t* data,
                         size_t len, void* user_data) {
    uint32_t handle;
    if (!HandleOf(session, stream, &handle)) {
      nghttp2_session_consume(session, stream, len);
      return 0;
    }
    Self(user_data)->handler_->OnResponseData(
        handle, std::string_view(reinterpret_cast<const char*>(data), len));
    return 0;
  }

  static int OnStreamClose(nghttp2_session* session, int32_t stream, uint32_t error_code,
                           void* user_data) {
    ClientSession* s = Self(user_data);
    if (s->block_ != nullptr && s->block_->stream == stream) ReleaseBlock(s);
    uint32_t handle;
    if (HandleOf(session, stream, &handle)) s->handler_->OnStreamClose(handle, error_code);
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
    uint32_t handle;
    if (!HandleOf(session, frame->hd.stream_id, &handle)) return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (!Self(user_data)->handler_->WriteData(
            handle, std::string_view(reinterpret_cast<const char*>(framehd), 9), len)) {
      return NGHTTP2_ERR_WOULDBLOCK;
    }
    return 0;
  }

  static ssize_t ReadData(nghttp2_session* session, int32_t stream, uint8_t*, size_t max,
                          uint32_t* flags, nghttp2_data_source*, void* user_data) {
    uint32_t handle;
    if (!HandleOf(session, stream, &handle)) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    bool last = false;
    size_t n = Self(user_data)->handler_->RequestDataReady(handle, max, &last);
    if (n == 0 && !last) return NGHTTP2_ERR_DEFERRED;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (last) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

ClientSession::~ClientSession() { Close(); }

void ClientSession::Close() {
  if (session_ == nullptr) return;
  ClientCallbacks::ReleaseBlock(this);
  nghttp2_session_del(session_);
  session_ = nullptr;
  goaway_ = false;
}

bool ClientSession::Start(const ClientSettings& settings, ClientHandler* handler) {
  settings_ = settings;
  handler_ = handler;
  goaway_ = false;
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, ClientCallbacks::OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cb, ClientCallbacks::OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, ClientCallbacks::OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, ClientCallbacks::OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, ClientCallbacks::OnStreamClose);
  nghttp2_session_callbacks_set_send_callback(cb, ClientCallbacks::Send);
  nghttp2_session_callbacks_set_send_data_callback(cb, ClientCallbacks::SendData);
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cb);
    return false;
  }
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_settings(opt, 32);
  int rv = nghttp2_session_client_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) {
    session_ = nullptr;
    return false;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings.max_header_bytes},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0) {
    return false;
  }
  if (settings.connection_window > 65535) {
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(settings.connection_window));
  }
  return true;
}

bool ClientSession::Receive(std::string_view in) {
  return nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in.data()),
                                  in.size()) >= 0;
}

bool ClientSession::Send() { return nghttp2_session_send(session_) == 0; }

bool ClientSession::Finished() const {
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

int32_t ClientSession::SubmitRequest(std::string_view block, bool has_body, uint32_t handle) {
  if (goaway_) return -1;
  HeaderSpace space = handler_->AcquireHeaderSpace();
  if (space.data == nullptr) return -1;
  auto* nv = reinterpret_cast<nghttp2_nv*>(space.data);
  size_t max = space.cap / sizeof(nghttp2_nv);
  size_t n = 0;
  std::string_view name, value;
  auto bytes = [](std::string_view s) {
    return const_cast<uint8_t*>(reinterpret_cast<const uint8_t*>(s.data()));
  };
  while (n < max && NextBlockField(&block, &name, &value)) {
    nv[n++] = {bytes(name), bytes(value), name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
  }
  nghttp2_data_provider provider{};
  provider.read_callback = ClientCallbacks::ReadData;
  int32_t id = nghttp2_submit_request(session_, nullptr, nv, n, has_body ? &provider : nullptr,
                                      HandleData(handle));
  handler_->ReleaseHeaderSpace(space);
  return id;
}

void ClientSession::ResumeRequestData(int32_t stream) {
  nghttp2_session_resume_data(session_, stream);
}

void ClientSession::ConsumeResponseData(int32_t stream, size_t n) {
  if (n != 0) nghttp2_session_consume(session_, stream, n);
}

void ClientSession::ResetStream(int32_t stream, uint32_t error_code) {
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, error_code);
}

bool ClientSession::Ping() {
  return nghttp2_submit_ping(session_, NGHTTP2_FLAG_NONE, nullptr) == 0;
}

uint32_t ClientSession::MaxConcurrentStreams() const {
  return nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

bool ClientSession::Closing() const { return goaway_ || !nghttp2_session_want_read(session_); }

}  // namespace zproxy::codec::http2
