#include "dataplane/transport/app_protocol.h"

namespace zproxy::dataplane::transport {

AppProtocol AppProtocolOf(std::string_view alpn) {
  // ALPN ids are exact byte strings (RFC 7301): no case folding, no prefixes.
  if (alpn.empty()) return AppProtocol::kNone;
  if (alpn == "http/1.1") return AppProtocol::kHttp11;
  if (alpn == "h2") return AppProtocol::kHttp2;
  return AppProtocol::kOther;
}

std::string_view AppProtocolName(AppProtocol p) {
  switch (p) {
    case AppProtocol::kNone:
      return "none";
    case AppProtocol::kHttp11:
      return "http/1.1";
    case AppProtocol::kHttp2:
      return "h2";
    case AppProtocol::kOther:
      break;
  }
  return "other";
}

}  // namespace zproxy::dataplane::transport
