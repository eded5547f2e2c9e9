#include "dataplane/codec/http1/body_decoder.h"

#include <algorithm>

namespace zproxy::codec::http1 {

void BodyDecoder::Start(http::Body body, bool decode) {
  framing_ = body.framing;
  decode_ = decode;
  done_ = body.framing == http::Framing::kNone ||
          (body.framing == http::Framing::kLength && body.length == 0);
  remaining_ = body.length;
  seen_ = 0;
  chunks_.Reset();
}

uint64_t BodyDecoder::data_bytes() const {
  return framing_ == http::Framing::kChunked ? chunks_.data_bytes() : seen_;
}

BodyStep BodyDecoder::Feed(std::string_view in) {
  BodyStep step;
  if (done_) {
    step.status = Status::kDone;
    return step;
  }
  switch (framing_) {
    case http::Framing::kNone:
      step.status = Status::kDone;
      return step;
    case http::Framing::kLength: {
      size_t take = static_cast<size_t>(std::min<uint64_t>(in.size(), remaining_));
      remaining_ -= take;
      seen_ += take;
      step.consumed = take;
      step.data = in.substr(0, take);
      done_ = remaining_ == 0;
      step.status = done_ ? Status::kDone : Status::kNeedMore;
      return step;
    }
    case http::Framing::kUntilClose:
      seen_ += in.size();
      step.consumed = in.size();
      step.data = in;
      return step;
    case http::Framing::kChunked: {
      Status st;
      if (decode_) {
        st = chunks_.FeedDecoded(in, &step.consumed, &step.data, &step.error, &step.trailer);
      } else {
        st = chunks_.Feed(in, &step.consumed, &step.error);
        step.data = in.substr(0, step.consumed);
      }
      if (st == Status::kError) step.data = {};
      if (st == Status::kDone) done_ = true;
      step.status = st;
      return step;
    }
  }
  return step;
}

}  // namespace zproxy::codec::http1
