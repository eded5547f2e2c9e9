// libFuzzer target for the HTTP/1 codec's BodyDecoder (dataplane/codec/http1/body_decoder.h):
// a body of each framing, fed whole and in pieces, verbatim and decoded, as the worker
// feeds what the provided buffers bring. Built by tools/fuzz-parser (clang, ASan + UBSan).
// Input: byte 0 = framing (bits 0-1: chunked, length, until close, chunked) and the piece
// seed, byte 1 = Content-Length for kLength (scaled), the rest = the bytes that follow a head.
// Checks, besides memory safety:
//  - a step consumes at most its input, data and trailer are views into what it consumed;
//  - fed in pieces the decoder reaches the same verdict, the same consumed total and the
//    same error as fed whole, verbatim and decoded alike;
//  - verbatim data is exactly the consumed bytes; verbatim and decoded agree on the verdict,
//    the body's end and data_bytes();
//  - decoded data is exactly the chunk data of the verbatim bytes (an independent
//    reference de-chunker over what the scanner accepted), and the trailer lines handed up
//    are exactly those between the last chunk and the final CRLF.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dataplane/codec/http1/body_decoder.h"

namespace {

using namespace zproxy::codec::http1;
using zproxy::http::Body;
using zproxy::http::Framing;

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
  }
}

bool Inside(std::string_view v, std::string_view buf) {
  return v.empty() || (v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size());
}

struct Outcome {
  Status status = Status::kNeedMore;
  Error error = Error::kNone;
  size_t consumed = 0;  // bytes of the input that belong to the body
  std::string data;     // concatenated data views
  std::string trailer;  // concatenated trailer views
  uint64_t data_bytes = 0;
};

// Feeds `in` in pieces of `piece` bytes (0 = whole); in decoded mode every piece is fed
// again on its unconsumed rest, as the worker does, until the decoder wants more.
Outcome Run(Body body, bool decode, std::string_view in, size_t piece) {
  BodyDecoder d;
  d.Start(body, decode);
  Outcome o;
  if (d.done()) {
    o.status = Status::kDone;
    return o;
  }
  size_t off = 0;
  int guard = 0;
  while (off < in.size() || in.empty()) {
    size_t n = piece == 0 ? in.size() - off : std::min(piece, in.size() - off);
    std::string_view part = in.substr(off, n);
    for (;;) {
      Check(++guard < 1 << 20, "decoder makes progress");
      BodyStep s = d.Feed(part);
      Check(s.consumed <= part.size(), "consumed <= input");
      Check(Inside(s.data, part.substr(0, s.consumed)), "data inside the consumed bytes");
      Check(Inside(s.trailer, part.substr(0, s.consumed)), "trailer inside the consumed bytes");
      if (!decode || !d.decoding()) {
        Check(s.status == Status::kError || s.data == part.substr(0, s.consumed),
              "verbatim data == consumed bytes");
      }
      o.data.append(s.data);
      o.trailer.append(s.trailer);
      o.consumed += s.consumed;
      part.remove_prefix(s.consumed);
      if (s.status == Status::kError) {
        Check(s.error != Error::kNone && s.error < Error::kCount, "an error says why");
        Check(s.data.empty(), "no data with an error");
        o.status = s.status;
        o.error = s.error;
        o.data_bytes = d.data_bytes();
        return o;
      }
      if (s.status == Status::kDone) {
        Check(d.done(), "done() after kDone");
        o.status = Status::kDone;
        o.data_bytes = d.data_bytes();
        // A finished decoder stays finished and takes nothing more.
        BodyStep again = d.Feed(in.substr(off));
        Check(again.status == Status::kDone && again.consumed == 0, "done is sticky");
        return o;
      }
      if (part.empty()) break;
      // kNeedMore with input left: only a decoded chunked body stops early (one run of
      // data per call).
      Check(d.decoding() && s.consumed > 0, "need-more leaves input only when decoding");
    }
    off += n;
    if (in.empty()) break;
  }
  o.status = Status::kNeedMore;
  o.data_bytes = d.data_bytes();
  return o;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reference de-chunker for bytes the scanner accepted: the data of every chunk and the
// trailer section (field lines without the final CRLF). Lenient about what the scanner
// already checked; returns false if it cannot follow the framing at all.
bool Dechunk(std::string_view in, bool complete, std::string* data, std::string* trailer) {
  size_t i = 0;
  for (;;) {
    uint64_t size = 0;
    size_t digits = 0;
    while (i < in.size() && Hex(in[i]) >= 0) {
      size = size * 16 + static_cast<uint64_t>(Hex(in[i++]));
      digits++;
    }
    size_t eol = in.find('\n', i);
    if (eol == std::string_view::npos) return !complete;
    i = eol + 1;
    if (digits == 0) return false;
    if (size == 0) break;
    if (size > in.size() - i) {
      data->append(in.substr(i));
      return !complete;
    }
    data->append(in.substr(i, static_cast<size_t>(size)));
    i += static_cast<size_t>(size);
    if (in.size() - i < 2) return !complete;
    i += 2;  // CRLF after the data
  }
  // Trailer section: lines up to an empty one.
  size_t start = i;
  for (;;) {
    size_t eol = in.find('\n', i);
    if (eol == std::string_view::npos) {
      // Incomplete: the decoder hands up only whole lines.
      return !complete;
    }
    if (eol == i + 1 && in[i] == '\r') {
      trailer->append(in.substr(start, i - start));
      return true;
    }
    i = eol + 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t ctl = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 2), size - 2);
  Body body;
  switch (ctl & 3) {
    case 1:
      body.framing = Framing::kLength;
      body.length = static_cast<uint64_t>(data[1]) * (ctl & 4 ? 1 : 37);
      break;
    case 2:
      body.framing = Framing::kUntilClose;
      break;
    default:
      body.framing = Framing::kChunked;
      break;
  }
  size_t piece = 1 + (ctl >> 3) % 29;
  if ((ctl >> 3) == 31) piece = 0;

  Outcome verb_whole = Run(body, false, in, 0);
  Outcome verb_parts = Run(body, false, in, piece);
  Outcome dec_whole = Run(body, true, in, 0);
  Outcome dec_parts = Run(body, true, in, 1 + data[1] % 7);

  for (const Outcome* o : {&verb_parts, &dec_whole, &dec_parts}) {
    Check(o->status == verb_whole.status, "same verdict whole/pieces/decoded");
    Check(o->error == verb_whole.error, "same error whole/pieces/decoded");
    Check(o->data_bytes == verb_whole.data_bytes || o->status == Status::kError,
          "same data_bytes");
  }
  if (verb_whole.status != Status::kError) {
    Check(verb_parts.consumed == verb_whole.consumed, "pieces consume as much as whole");
    Check(dec_whole.consumed == verb_whole.consumed, "decoded consumes as much as verbatim");
    Check(dec_parts.consumed == verb_whole.consumed, "decoded pieces consume as much");
    Check(verb_whole.data == in.substr(0, verb_whole.consumed), "verbatim data is the input");
    Check(verb_parts.data == verb_whole.data, "verbatim pieces give the same bytes");
    Check(dec_whole.data == dec_parts.data, "decoded whole == decoded pieces");
    Check(dec_whole.trailer == dec_parts.trailer, "trailer whole == trailer pieces");
    if (body.framing == Framing::kChunked) {
      std::string ref_data, ref_trailer;
      bool complete = verb_whole.status == Status::kDone;
      bool followed = Dechunk(in.substr(0, verb_whole.consumed), complete, &ref_data, &ref_trailer);
      Check(followed, "reference de-chunker follows accepted framing");
      Check(dec_whole.data_bytes >= dec_whole.data.size(), "data_bytes covers data handed up");
      if (complete) {
        Check(dec_whole.data == ref_data, "decoded data == reference");
        Check(dec_whole.data.size() == dec_whole.data_bytes, "data_bytes == decoded size");
        Check(dec_whole.trailer == ref_trailer, "trailer == reference");
      } else {
        // Mid-body the decoder may hold back nothing but framing: what it handed up is a
        // prefix of the reference data.
        Check(ref_data.compare(0, dec_whole.data.size(), dec_whole.data) == 0,
              "decoded data is a prefix of the reference");
      }
    } else {
      Check(dec_whole.data == verb_whole.data, "non-chunked bodies are never decoded");
    }
    if (body.framing == Framing::kLength) {
      Check(verb_whole.consumed == std::min<uint64_t>(in.size(), body.length), "length consumed");
      Check((verb_whole.status == Status::kDone) == (in.size() >= body.length), "length done");
    }
    if (body.framing == Framing::kUntilClose) {
      Check(verb_whole.consumed == in.size() && verb_whole.status == Status::kNeedMore,
            "close-delimited takes everything");
    }
  }
  return 0;
}
