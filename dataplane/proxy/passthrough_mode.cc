#include "dataplane/proxy/passthrough_mode.h"

namespace zproxy::dataplane {

const char* PassModeName(PassMode mode) {
  switch (mode) {
    case PassMode::kSockmap:
      return "sockmap";
    case PassMode::kSplice:
      return "splice";
    case PassMode::kCopy:
      return "copy";
  }
  return "copy";
}

PassMode ResolvePassMode(zproxy::v1::PassthroughMode requested, const PassthroughCaps& caps,
                         std::string* why) {
  PassMode want = kAutoMode;
  switch (requested) {
    case zproxy::v1::SOCKMAP:
      want = PassMode::kSockmap;
      break;
    case zproxy::v1::SPLICE:
      want = PassMode::kSplice;
      break;
    case zproxy::v1::COPY:
      want = PassMode::kCopy;
      break;
    default:
      break;
  }
  why->clear();
  bool is_auto = requested != zproxy::v1::SOCKMAP && requested != zproxy::v1::SPLICE &&
                 requested != zproxy::v1::COPY;
  if (is_auto && want == PassMode::kSockmap && !caps.sockmap()) {
    *why = "no SOCKHASH from zproxyd (BPF unavailable: see zproxyd's sockmap log line)";
    want = kAutoFallback;
  }
  if (want == PassMode::kSockmap && !caps.sockmap()) {
    *why = "no SOCKHASH from zproxyd (BPF unavailable: see zproxyd's sockmap log line)";
    want = PassMode::kSplice;
  }
  if (want == PassMode::kSplice && !caps.splice) {
    *why += std::string(why->empty() ? "" : "; ") + "IORING_OP_SPLICE unsupported";
    want = PassMode::kCopy;
  }
  return want;
}

}  // namespace zproxy::dataplane
