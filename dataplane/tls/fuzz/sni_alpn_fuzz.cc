// libFuzzer target for the data plane's TLS name and protocol selection that builds without
// BoringSSL: the SNI table (dataplane/tls/sni_table.h: certificate names -> certificates
// for a client's server name) and ALPN (the listener's protocol list written to ALPN wire
// format as ServerContext::Create does, the client's list as the handshake hands it over,
// SSL_select_next_proto with server preference as ServerContext's callback calls it -
// the system OpenSSL's here, the same API as BoringSSL's - then
// dataplane/transport/app_protocol.h's AppProtocolOf on the result).
// Input: lines. Line 0 = the client's server name; lines starting with '@' = ALPN ids the
// listener offers ('@' removed), lines starting with '#' = the client's ALPN ids; every
// other line = a certificate name, for certificate (line number % 4).
// Checks, besides memory safety: Find() gives exactly the certificates of a reference
// model (exact names case-insensitively, a one-label "*." wildcard, exact names first, one
// trailing dot tolerated), in the order added, without duplicates; Add() refuses exactly the
// names with a '*' anywhere but a leading "*."; the negotiated protocol is the first of the
// listener's list the client offers, and AppProtocolOf names it.
#include <openssl/ssl.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/tls/sni_table.h"
#include "dataplane/transport/app_protocol.h"

namespace {

using zproxy::dataplane::transport::AppProtocol;
using zproxy::dataplane::transport::AppProtocolName;
using zproxy::dataplane::transport::AppProtocolOf;

void Check(bool ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "invariant violated: %s\n", what);
    abort();
  }
}

std::string Lower(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return o;
}

struct Entry {
  std::string name;  // lower case; for wildcards without "*."
  bool wildcard;
  uint32_t index;
};

std::vector<uint32_t> Reference(const std::vector<Entry>& entries, std::string_view sni) {
  std::vector<uint32_t> out;
  if (sni.empty()) return out;
  if (sni.back() == '.') sni.remove_suffix(1);
  std::string name = Lower(sni);
  auto collect = [&](bool wildcard, const std::string& key) {
    for (const Entry& e : entries) {
      if (e.wildcard == wildcard && e.name == key &&
          std::find(out.begin(), out.end(), e.index) == out.end()) {
        out.push_back(e.index);
      }
    }
  };
  collect(false, name);
  if (!out.empty()) return out;
  size_t dot = name.find('.');
  if (dot == std::string::npos || dot == 0) return out;
  collect(true, name.substr(dot + 1));
  return out;
}

void CheckSni(std::string_view sni, const std::vector<std::string_view>& names) {
  zproxy::tls::SniTable table;
  std::vector<Entry> entries;
  for (size_t i = 0; i < names.size(); i++) {
    std::string_view n = names[i];
    uint32_t index = static_cast<uint32_t>(i % 4);
    bool wild = n.size() > 2 && n.substr(0, 2) == "*.";
    std::string_view rest = wild ? n.substr(2) : n;
    bool valid = !n.empty() && rest.find('*') == std::string_view::npos;
    Check(table.Add(n, index) == valid, "Add refuses exactly the bad wildcards");
    if (valid) entries.push_back(Entry{Lower(rest), wild, index});
  }
  const std::vector<uint32_t>* got = table.Find(sni);
  std::vector<uint32_t> want = Reference(entries, sni);
  if (want.empty()) {
    Check(got == nullptr, "no certificate for a name nothing covers");
  } else {
    Check(got != nullptr && *got == want, "the certificates of the reference model, in order");
  }
}

void CheckAlpn(const std::vector<std::string_view>& server,
               const std::vector<std::string_view>& client) {
  // ServerContext::Create: ids of 1..255 bytes, in order; none = "http/1.1".
  std::string server_wire;
  for (std::string_view p : server) {
    if (p.empty() || p.size() > 255) return;  // refused by the config
    server_wire.push_back(static_cast<char>(p.size()));
    server_wire.append(p);
  }
  if (server_wire.empty()) server_wire = std::string("\x08http/1.1", 9);
  // The handshake only calls the callback with a well-formed, non-empty list.
  std::string client_wire;
  for (std::string_view p : client) {
    if (p.empty() || p.size() > 255) return;
    client_wire.push_back(static_cast<char>(p.size()));
    client_wire.append(p);
  }
  if (client_wire.empty()) return;
  unsigned char* selected = nullptr;
  unsigned char selected_len = 0;
  int r = SSL_select_next_proto(
      &selected, &selected_len, reinterpret_cast<const unsigned char*>(server_wire.data()),
      static_cast<unsigned>(server_wire.size()),
      reinterpret_cast<const unsigned char*>(client_wire.data()),
      static_cast<unsigned>(client_wire.size()));
  // Reference: the first of the server's list that the client offers.
  std::string want;
  bool found = false;
  for (size_t i = 0; i < server_wire.size() && !found; i += 1 + static_cast<uint8_t>(server_wire[i])) {
    std::string_view s(server_wire.data() + i + 1, static_cast<uint8_t>(server_wire[i]));
    for (std::string_view c : client) {
      if (c == s) {
        want = std::string(s);
        found = true;
        break;
      }
    }
  }
  Check((r == OPENSSL_NPN_NEGOTIATED) == found, "negotiated iff a protocol is in common");
  AppProtocol proto = AppProtocol::kNone;
  if (r == OPENSSL_NPN_NEGOTIATED) {
    std::string_view got(reinterpret_cast<const char*>(selected), selected_len);
    Check(got == want, "server preference wins");
    proto = AppProtocolOf(got);
    Check(proto == (got == "h2" ? AppProtocol::kHttp2
                    : got == "http/1.1" ? AppProtocol::kHttp11
                                        : AppProtocol::kOther),
          "AppProtocolOf names the id exactly");
    if (proto != AppProtocol::kOther) Check(AppProtocolName(proto) == got, "name round trip");
  } else {
    // ServerContext continues without ALPN: the connection speaks HTTP/1.1 by default.
    proto = AppProtocolOf("");
    Check(proto == AppProtocol::kNone, "no ALPN is kNone");
  }
  Check(!AppProtocolName(proto).empty(), "every protocol has a name");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t i = 0; i <= text.size(); i++) {
    if (i == text.size() || text[i] == '\n') {
      lines.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  std::string_view sni = lines[0];
  std::vector<std::string_view> names, server, client;
  for (size_t i = 1; i < lines.size(); i++) {
    std::string_view l = lines[i];
    if (!l.empty() && l[0] == '@') {
      server.push_back(l.substr(1));
    } else if (!l.empty() && l[0] == '#') {
      client.push_back(l.substr(1));
    } else {
      names.push_back(l);
    }
  }
  CheckSni(sni, names);
  CheckAlpn(server, client);
  return 0;
}
