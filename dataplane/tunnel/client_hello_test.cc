#include "dataplane/tunnel/client_hello.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace zproxy::tunnel {
namespace {

// Byte strings from literals that may hold NULs.
template <size_t N>
std::string B(const char (&s)[N]) {
  return std::string(s, N - 1);
}

std::string U16(size_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }
std::string U24(size_t v) { return static_cast<char>(v >> 16) + U16(v & 0xffff); }
std::string Ext(uint16_t type, const std::string& data) {
  return U16(type) + U16(data.size()) + data;
}

std::string SniExt(const std::string& name) {
  std::string entry = std::string(1, '\0') + U16(name.size()) + name;
  return Ext(0, U16(entry.size()) + entry);
}

std::string AlpnExt(const std::vector<std::string>& protos) {
  std::string list;
  for (const auto& p : protos) list += static_cast<char>(p.size()) + p;
  return Ext(16, U16(list.size()) + list);
}

// A ClientHello body shaped like a browser's: TLS 1.2 legacy version, a 32-byte session
// id, two suites, null compression, then the given extensions (nullopt-like: `exts`
// "-" = no extensions block at all).
std::string Body(const std::string& exts, bool with_exts = true) {
  std::string b = "\x03\x03" + std::string(32, 'r') + std::string(1, 32) + std::string(32, 's') +
                  U16(4) + "\x13\x01\x13\x02" + std::string(1, 1) + std::string(1, '\0');
  if (with_exts) b += U16(exts.size()) + exts;
  return b;
}

std::string Handshake(const std::string& body, uint8_t type = 1) {
  return static_cast<char>(type) + U24(body.size()) + body;
}

std::string Record(const std::string& payload) {
  return "\x16\x03\x01" + U16(payload.size()) + payload;
}

std::string Hello(const std::string& sni, const std::vector<std::string>& alpn = {},
                  size_t pad = 0) {
  std::string exts = Ext(43, "\x04\x03\x04\x03\x03");  // supported_versions
  if (!sni.empty()) exts += SniExt(sni);
  if (!alpn.empty()) exts += AlpnExt(alpn);
  if (pad != 0) exts += Ext(21, std::string(pad, '\0'));
  return Record(Handshake(Body(exts)));
}

struct Parsed {
  HelloResult r;
  ClientHelloInfo info;
  std::string scratch = std::string(kMaxClientHelloBytes, '\0');
};

Parsed Parse(std::string_view in) {
  Parsed p;
  p.r = ParseClientHello(in, p.scratch.data(), &p.info);
  return p;
}

TEST(ClientHello, ServerNameAndAlpn) {
  std::string h = Hello("a.example.com", {"h2", "http/1.1"});
  Parsed p = Parse(h);
  ASSERT_EQ(p.r.status, HelloStatus::kComplete) << p.r.why;
  EXPECT_EQ(p.info.server_name, "a.example.com");
  EXPECT_TRUE(AlpnOffers(p.info.alpn, "h2"));
  EXPECT_TRUE(AlpnOffers(p.info.alpn, "http/1.1"));
  EXPECT_FALSE(AlpnOffers(p.info.alpn, "h3"));
  EXPECT_FALSE(AlpnOffers(p.info.alpn, "h"));
}

TEST(ClientHello, NoSniNoAlpn) {
  Parsed p = Parse(Hello(""));
  ASSERT_EQ(p.r.status, HelloStatus::kComplete) << p.r.why;
  EXPECT_TRUE(p.info.server_name.empty());
  EXPECT_TRUE(p.info.alpn.empty());
  EXPECT_FALSE(AlpnOffers(p.info.alpn, "h2"));
}

TEST(ClientHello, NoExtensionsBlock) {
  Parsed p = Parse(Record(Handshake(Body("", false))));
  ASSERT_EQ(p.r.status, HelloStatus::kComplete) << p.r.why;
  EXPECT_TRUE(p.info.server_name.empty());
}

TEST(ClientHello, BytesAfterTheHelloAreIgnored) {
  // TLS 1.3 early data, or anything else behind the first flight.
  std::string h = Hello("a.example.com") + "\x17\x03\x03\x00\x05hello";
  Parsed p = Parse(h);
  ASSERT_EQ(p.r.status, HelloStatus::kComplete) << p.r.why;
  EXPECT_EQ(p.info.server_name, "a.example.com");
}

TEST(ClientHello, EveryPrefixAsksForMore) {
  std::string h = Hello("a.example.com", {"h2"});
  for (size_t n = 0; n < h.size(); n++) {
    Parsed p = Parse(std::string_view(h).substr(0, n));
    ASSERT_EQ(p.r.status, HelloStatus::kNeedMore) << n;
    EXPECT_GT(p.r.need, n);
    EXPECT_LE(p.r.need, h.size());
  }
  // Following `need` from nothing reaches the whole hello in a few steps (header, record).
  size_t have = 0;
  int steps = 0;
  Parsed p = Parse("");
  while (p.r.status == HelloStatus::kNeedMore) {
    have = p.r.need;
    p = Parse(std::string_view(h).substr(0, have));
    steps++;
  }
  EXPECT_EQ(p.r.status, HelloStatus::kComplete);
  EXPECT_EQ(steps, 2);
}

TEST(ClientHello, FragmentedAcrossRecords) {
  std::string hs = Handshake(Body(SniExt("b.example.com") + AlpnExt({"h2"})));
  // Cuts inside the 4-byte handshake header and in the middle of the extensions.
  std::string in = Record(hs.substr(0, 2)) + Record(hs.substr(2, 40)) + Record(hs.substr(42));
  Parsed p = Parse(in);
  ASSERT_EQ(p.r.status, HelloStatus::kComplete) << p.r.why;
  EXPECT_EQ(p.info.server_name, "b.example.com");
  EXPECT_TRUE(AlpnOffers(p.info.alpn, "h2"));
  for (size_t n = 0; n < in.size(); n++) {
    ASSERT_EQ(Parse(std::string_view(in).substr(0, n)).r.status, HelloStatus::kNeedMore) << n;
  }
}

TEST(ClientHello, LargeHelloInOneRecord) {
  std::string h = Hello("big.example.com", {"h2"}, 15000);
  ASSERT_LE(h.size(), kMaxClientHelloBytes);
  Parsed p = Parse(h);
  ASSERT_EQ(p.r.status, HelloStatus::kComplete) << p.r.why;
  EXPECT_EQ(p.info.server_name, "big.example.com");
}

TEST(ClientHello, GarbageIsRefusedOnItsFirstByte) {
  EXPECT_EQ(Parse("G").r.status, HelloStatus::kMalformed);
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n").r.status, HelloStatus::kMalformed);
  EXPECT_EQ(Parse("SSH-2.0-OpenSSH_9.2\r\n").r.status, HelloStatus::kMalformed);
  // SSLv2-compatible hello (first bit set): not a TLS record.
  EXPECT_EQ(Parse(B("\x80\x2e\x01\x03\x01")).r.status, HelloStatus::kMalformed);
  // A handshake record, TLS version, but another handshake message (ServerHello).
  EXPECT_EQ(Parse(Record(Handshake(Body(""), 2))).r.status, HelloStatus::kMalformed);
  EXPECT_EQ(Parse(B("\x16\x03\x01\x00\x10\x02")).r.status, HelloStatus::kMalformed);
  // Another content type (alert), another record version.
  EXPECT_EQ(Parse(B("\x15\x03\x01\x00\x02\x02\x28")).r.status, HelloStatus::kMalformed);
  EXPECT_EQ(Parse(B("\x16\x02\x00")).r.status, HelloStatus::kMalformed);
}

TEST(ClientHello, RecordLengths) {
  EXPECT_EQ(Parse(std::string("\x16\x03\x01\x00\x00", 5)).r.status, HelloStatus::kMalformed);
  EXPECT_EQ(Parse(std::string("\x16\x03\x01\x40\x01", 5)).r.status, HelloStatus::kMalformed);
  // A handshake message longer than the bound, announced in the first record.
  std::string big = std::string("\x16\x03\x01\x40\x00\x01", 6) + U24(20000);
  EXPECT_EQ(Parse(big).r.status, HelloStatus::kMalformed);
  // A hello spread over so many records that it does not fit the bound.
  std::string hs = Handshake(Body(Ext(21, std::string(12000, '\0'))));
  std::string in;
  for (size_t i = 0; i < hs.size(); i += 10) in += Record(hs.substr(i, 10));
  EXPECT_EQ(Parse(in).r.status, HelloStatus::kMalformed);
}

TEST(ClientHello, InconsistentBodies) {
  // Each is a complete record whose ClientHello inside does not add up.
  std::string ok = Body(SniExt("a.example.com"));
  EXPECT_EQ(Parse(Record(Handshake(ok.substr(0, 20)))).r.status, HelloStatus::kMalformed);
  EXPECT_EQ(Parse(Record(Handshake(ok + "x"))).r.status, HelloStatus::kMalformed);
  std::string long_session = "\x03\x03" + std::string(32, 'r') + std::string(1, 33) +
                             std::string(33, 's') + U16(2) + "\x13\x01" + std::string(1, 1) +
                             std::string(1, '\0');
  EXPECT_EQ(Parse(Record(Handshake(long_session))).r.status, HelloStatus::kMalformed);
  std::string odd_suites = "\x03\x03" + std::string(32, 'r') + std::string(1, '\0') + U16(3) +
                           "\x13\x01\x13" + std::string(1, 1) + std::string(1, '\0');
  EXPECT_EQ(Parse(Record(Handshake(odd_suites))).r.status, HelloStatus::kMalformed);
  // An extension whose length runs past the block.
  std::string exts = U16(0) + U16(100) + "abc";
  EXPECT_EQ(Parse(Record(Handshake(Body(exts)))).r.status, HelloStatus::kMalformed);
}

TEST(ClientHello, BadServerNames) {
  auto parse_ext = [](const std::string& ext) {
    return Parse(Record(Handshake(Body(ext)))).r.status;
  };
  EXPECT_EQ(parse_ext(SniExt("a.example.com") + SniExt("b.example.com")), HelloStatus::kMalformed);
  EXPECT_EQ(parse_ext(SniExt("")), HelloStatus::kMalformed);
  EXPECT_EQ(parse_ext(SniExt(std::string("a\0b", 3))), HelloStatus::kMalformed);
  EXPECT_EQ(parse_ext(SniExt(std::string(256, 'a'))), HelloStatus::kMalformed);
  EXPECT_EQ(parse_ext(Ext(0, "")), HelloStatus::kMalformed);
  std::string two = std::string(1, '\0') + U16(1) + "a" + std::string(1, '\0') + U16(1) + "b";
  EXPECT_EQ(parse_ext(Ext(0, U16(two.size()) + two)), HelloStatus::kMalformed);
  std::string other_type = std::string(1, 1) + U16(1) + "a";
  EXPECT_EQ(parse_ext(Ext(0, U16(other_type.size()) + other_type)), HelloStatus::kMalformed);
}

TEST(ClientHello, BadAlpn) {
  auto parse_ext = [](const std::string& ext) {
    return Parse(Record(Handshake(Body(ext)))).r.status;
  };
  EXPECT_EQ(parse_ext(AlpnExt({"h2", ""})), HelloStatus::kMalformed);
  EXPECT_EQ(parse_ext(AlpnExt({})), HelloStatus::kMalformed);
  EXPECT_EQ(parse_ext(AlpnExt({"h2"}) + AlpnExt({"h2"})), HelloStatus::kMalformed);
  std::string overrun = U16(4) + std::string(1, 9) + "h2x";
  EXPECT_EQ(parse_ext(Ext(16, overrun)), HelloStatus::kMalformed);
}

TEST(ClientHello, AlpnOffersStopsAtABrokenList) {
  EXPECT_FALSE(AlpnOffers(std::string(1, 5) + "h2", "h2"));
  EXPECT_TRUE(AlpnOffers(std::string(1, 2) + "h2" + std::string(1, 9), "h2"));
}

}  // namespace
}  // namespace zproxy::tunnel
