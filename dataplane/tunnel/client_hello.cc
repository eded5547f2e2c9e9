// ClientHello parsing (RFC 8446 4.1.2, RFC 5246 7.4.1.2; SNI RFC 6066 3; ALPN RFC 7301).
// Two steps: the records at the front of the stream are walked until they carry the whole
// handshake message (reassembled into the caller's scratch only when it spans records),
// then the message body is walked field by field through a reader whose every read is
// checked against the end.
#include "dataplane/tunnel/client_hello.h"

#include <cstring>

namespace zproxy::tunnel {
namespace {

constexpr uint8_t kContentHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecordPayload = 16384;
constexpr size_t kHandshakeHeader = 4;
constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtAlpn = 16;
constexpr uint8_t kNameTypeHostName = 0;
constexpr size_t kMaxHostName = 255;

HelloResult Malformed(const char* why) { return {HelloStatus::kMalformed, 0, why}; }
HelloResult NeedMore(size_t need) { return {HelloStatus::kNeedMore, need, nullptr}; }

uint32_t U8At(std::string_view s, size_t i) { return static_cast<uint8_t>(s[i]); }
uint32_t U16At(std::string_view s, size_t i) { return U8At(s, i) << 8 | U8At(s, i + 1); }
uint32_t U24At(std::string_view s, size_t i) { return U8At(s, i) << 16 | U16At(s, i + 1); }

// Reads big-endian integers and length-prefixed vectors; a read past the end fails and
// leaves the reader where it was.
class Reader {
 public:
  explicit Reader(std::string_view s) : s_(s) {}
  size_t left() const { return s_.size(); }

  bool U8(uint32_t* v) { return Int(1, v); }
  bool U16(uint32_t* v) { return Int(2, v); }
  bool Skip(size_t n) {
    if (s_.size() < n) return false;
    s_.remove_prefix(n);
    return true;
  }
  // A vector with a `width`-byte length in front.
  bool Prefixed(size_t width, std::string_view* out) {
    if (s_.size() < width) return false;
    size_t len = 0;
    for (size_t i = 0; i < width; i++) len = len << 8 | U8At(s_, i);
    if (s_.size() - width < len) return false;
    *out = s_.substr(width, len);
    s_.remove_prefix(width + len);
    return true;
  }

 private:
  bool Int(size_t width, uint32_t* v) {
    if (s_.size() < width) return false;
    uint32_t x = 0;
    for (size_t i = 0; i < width; i++) x = x << 8 | U8At(s_, i);
    *v = x;
    s_.remove_prefix(width);
    return true;
  }

  std::string_view s_;
};

// server_name: exactly one entry, a host_name of 1..255 bytes without NUL (what BoringSSL
// accepts; a server that terminates the connection would refuse anything else anyway).
bool ParseServerName(std::string_view data, std::string_view* name) {
  Reader r(data);
  std::string_view list;
  if (!r.Prefixed(2, &list) || r.left() != 0) return false;
  Reader l(list);
  uint32_t type;
  std::string_view host;
  if (!l.U8(&type) || !l.Prefixed(2, &host) || l.left() != 0) return false;
  if (type != kNameTypeHostName || host.empty() || host.size() > kMaxHostName) return false;
  if (memchr(host.data(), 0, host.size()) != nullptr) return false;
  *name = host;
  return true;
}

// ALPN: a non-empty list of non-empty protocol names.
bool ParseAlpn(std::string_view data, std::string_view* list_out) {
  Reader r(data);
  std::string_view list;
  if (!r.Prefixed(2, &list) || r.left() != 0 || list.empty()) return false;
  Reader l(list);
  while (l.left() != 0) {
    std::string_view proto;
    if (!l.Prefixed(1, &proto) || proto.empty()) return false;
  }
  *list_out = list;
  return true;
}

// The ClientHello body (after the handshake header).
HelloResult ParseBody(std::string_view body, ClientHelloInfo* out) {
  Reader r(body);
  uint32_t version;
  std::string_view session_id, suites, compression, exts;
  if (!r.U16(&version) || (version >> 8) != 3) return Malformed("bad client_version");
  if (!r.Skip(32)) return Malformed("truncated random");
  if (!r.Prefixed(1, &session_id) || session_id.size() > 32) return Malformed("bad session_id");
  if (!r.Prefixed(2, &suites) || suites.empty() || suites.size() % 2 != 0) {
    return Malformed("bad cipher_suites");
  }
  if (!r.Prefixed(1, &compression) || compression.empty()) {
    return Malformed("bad compression_methods");
  }
  *out = ClientHelloInfo{};
  if (r.left() == 0) return {HelloStatus::kComplete};  // no extensions (old clients)
  if (!r.Prefixed(2, &exts) || r.left() != 0) return Malformed("bad extensions length");
  Reader e(exts);
  bool seen_sni = false, seen_alpn = false;
  while (e.left() != 0) {
    uint32_t type;
    std::string_view data;
    if (!e.U16(&type) || !e.Prefixed(2, &data)) return Malformed("truncated extension");
    if (type == kExtServerName) {
      if (seen_sni) return Malformed("server_name given twice");
      seen_sni = true;
      if (!ParseServerName(data, &out->server_name)) return Malformed("bad server_name");
    } else if (type == kExtAlpn) {
      if (seen_alpn) return Malformed("ALPN given twice");
      seen_alpn = true;
      if (!ParseAlpn(data, &out->alpn)) return Malformed("bad ALPN");
    }
  }
  return {HelloStatus::kComplete};
}

}  // namespace

HelloResult ParseClientHello(std::string_view in, char* scratch, ClientHelloInfo* out) {
  if (in.size() > kMaxClientHelloBytes) in = in.substr(0, kMaxClientHelloBytes);
  size_t pos = 0;        // start of the next record
  size_t gathered = 0;   // handshake bytes copied into scratch
  std::string_view msg;  // the whole handshake message once it is complete
  while (msg.empty()) {
    // Record header, checked as soon as its bytes are there so that garbage (an HTTP
    // request, a probe) is refused on its first bytes rather than after a timeout.
    size_t avail = in.size() - pos;
    if (avail >= 1 && U8At(in, pos) != kContentHandshake) {
      return Malformed("not a TLS handshake record");
    }
    if (avail >= 2 && U8At(in, pos + 1) != 3) return Malformed("not a TLS record version");
    if (avail < kRecordHeader) {
      if (pos + kRecordHeader > kMaxClientHelloBytes) return Malformed("ClientHello too large");
      return NeedMore(pos + kRecordHeader);
    }
    size_t len = U16At(in, pos + 3);
    if (len == 0) return Malformed("empty handshake record");
    if (len > kMaxRecordPayload) return Malformed("record longer than 2^14 bytes");
    if (pos + kRecordHeader + len > kMaxClientHelloBytes) return Malformed("ClientHello too large");
    std::string_view payload = in.substr(pos + kRecordHeader, len);  // may be a prefix
    // The first record's start: handshake type and length, also before it is complete.
    if (pos == 0 && !payload.empty() && U8At(payload, 0) != kHandshakeClientHello) {
      return Malformed("not a ClientHello");
    }
    if (pos == 0 && payload.size() >= kHandshakeHeader &&
        kHandshakeHeader + U24At(payload, 1) > kMaxClientHelloBytes) {
      return Malformed("ClientHello too large");
    }
    if (payload.size() < len) return NeedMore(pos + kRecordHeader + len);
    if (pos == 0 && len >= kHandshakeHeader && kHandshakeHeader + U24At(payload, 1) <= len) {
      // The usual case: one record holds the whole message; parsed where it is.
      msg = payload.substr(0, kHandshakeHeader + U24At(payload, 1));
      break;
    }
    // Fragmented across records: reassembled (bounded: the input is).
    memcpy(scratch + gathered, payload.data(), len);
    gathered += len;
    pos += kRecordHeader + len;
    std::string_view have(scratch, gathered);
    if (gathered >= 1 && U8At(have, 0) != kHandshakeClientHello) {
      return Malformed("not a ClientHello");
    }
    if (gathered >= kHandshakeHeader) {
      size_t total = kHandshakeHeader + U24At(have, 1);
      if (total > kMaxClientHelloBytes) return Malformed("ClientHello too large");
      if (gathered >= total) msg = have.substr(0, total);
    }
  }
  return ParseBody(msg.substr(kHandshakeHeader), out);
}

bool AlpnOffers(std::string_view alpn, std::string_view protocol) {
  Reader r(alpn);
  std::string_view p;
  while (r.Prefixed(1, &p)) {
    if (p == protocol) return true;
  }
  return false;
}

}  // namespace zproxy::tunnel
