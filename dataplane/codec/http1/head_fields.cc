#include "dataplane/codec/http1/head_fields.h"

namespace zproxy::codec::http1 {

using zproxy::http1::EqualsIgnoreCase;

http::Framing ToFraming(zproxy::http1::BodyKind kind) {
  switch (kind) {
    case zproxy::http1::BodyKind::kNone:
      return http::Framing::kNone;
    case zproxy::http1::BodyKind::kContentLength:
      return http::Framing::kLength;
    case zproxy::http1::BodyKind::kChunked:
      return http::Framing::kChunked;
    case zproxy::http1::BodyKind::kCloseDelimited:
      return http::Framing::kUntilClose;
  }
  return http::Framing::kNone;
}

std::string_view UpgradeValue(std::span<const http::Field> fields) {
  for (const http::Field& f : fields) {
    if (EqualsIgnoreCase(f.name, "upgrade")) return f.value;
  }
  return {};
}

std::span<http::Field> EndToEndFields(std::span<http::Field> fields, const uint64_t hop_by_hop[2],
                                      bool drop_host) {
  size_t kept = 0;
  for (size_t i = 0; i < fields.size(); i++) {
    if (zproxy::http1::IsHopByHop(hop_by_hop, i)) continue;
    if (drop_host && EqualsIgnoreCase(fields[i].name, "host")) continue;
    if (kept != i) fields[kept] = fields[i];
    kept++;
  }
  return fields.subspan(0, kept);
}

void WriteStatusLine(Writer& w, const http::ResponseHead& resp) {
  w.Put("HTTP/1.1 ");
  w.PutUint(resp.status);
  w.Put(" ");
  w.Put(resp.reason);
  w.Put("\r\n");
}

void WriteFields(Writer& w, std::span<const http::Field> fields) {
  for (const http::Field& f : fields) {
    w.Put(f.name);
    w.Put(": ");
    w.Put(f.value);
    w.Put("\r\n");
  }
}

void WriteUpgrade(Writer& w, std::string_view protocol) {
  w.Put("Connection: Upgrade\r\nUpgrade: ");
  w.Put(protocol);
  w.Put("\r\n");
}

}  // namespace zproxy::codec::http1
