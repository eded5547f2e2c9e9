// libFuzzer target for the ClientHello parser of SNI-routed tcp_proxy listeners
// (dataplane/tunnel/client_hello.h). Input: the first bytes a client sends.
// Checks, besides memory safety (the parser must never read outside the input or write
// outside its scratch):
//   - kNeedMore asks for more than it was given, and never beyond kMaxClientHelloBytes;
//   - the answers are consistent across prefixes, as the data plane sees a ClientHello
//     arrive in pieces: a prefix refused means the whole input is refused (garbage is
//     decided on bytes already seen), a prefix accepted means the whole input gives the
//     same server name and ALPN list;
//   - the views it returns lie inside the input or the scratch, and a server name is 1..255
//     bytes without NUL; AlpnOffers walks the ALPN list without reading past it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "dataplane/tunnel/client_hello.h"

namespace {

using zproxy::tunnel::ClientHelloInfo;
using zproxy::tunnel::HelloResult;
using zproxy::tunnel::HelloStatus;
using zproxy::tunnel::kMaxClientHelloBytes;

char g_scratch[kMaxClientHelloBytes];

void Check(bool ok) {
  if (!ok) abort();
}

bool Inside(std::string_view v, const char* base, size_t len) {
  return v.empty() || (v.data() >= base && v.data() + v.size() <= base + len);
}

HelloResult ParseChecked(std::string_view in, ClientHelloInfo* info) {
  HelloResult r = zproxy::tunnel::ParseClientHello(in, g_scratch, info);
  if (r.status == HelloStatus::kNeedMore) {
    Check(r.need > in.size() && r.need <= kMaxClientHelloBytes);
  } else if (r.status == HelloStatus::kMalformed) {
    Check(r.why != nullptr);
  } else {
    for (std::string_view v : {info->server_name, info->alpn}) {
      Check(Inside(v, in.data(), in.size()) || Inside(v, g_scratch, sizeof(g_scratch)));
    }
    Check(info->server_name.size() <= 255);
    Check(info->server_name.find('\0') == std::string_view::npos);
    zproxy::tunnel::AlpnOffers(info->alpn, "h2");
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ClientHelloInfo whole;
  HelloResult full = ParseChecked(in, &whole);
  // Copies: the scratch is reused by the prefix parses below.
  std::string name(whole.server_name), alpn(whole.alpn);
  // Prefixes at the lengths the data plane would re-parse at (the `need` steps), plus a
  // few arbitrary cuts.
  size_t cuts[8] = {0, 1, 5, size / 3, size / 2, size - (size > 0 ? 1 : 0), 0, 0};
  ClientHelloInfo part;
  HelloResult step = ParseChecked(in.substr(0, 0), &part);
  size_t n = 0;
  int guard = 0;
  while (step.status == HelloStatus::kNeedMore && step.need <= size && guard++ < 4096) {
    n = step.need;
    step = ParseChecked(in.substr(0, n), &part);
  }
  cuts[6] = n;
  cuts[7] = n > 0 ? n - 1 : 0;
  for (size_t cut : cuts) {
    if (cut > size) continue;
    HelloResult r = ParseChecked(in.substr(0, cut), &part);
    if (r.status == HelloStatus::kMalformed) Check(full.status == HelloStatus::kMalformed);
    if (r.status == HelloStatus::kComplete) {
      Check(full.status == HelloStatus::kComplete);
      Check(part.server_name == name && part.alpn == alpn);
    }
  }
  return 0;
}
