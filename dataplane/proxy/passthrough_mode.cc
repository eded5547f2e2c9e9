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

PassMode ResolveTunnelMode(zproxy::v1::PassthroughMode requested, bool tls_listener,
                           const PassthroughCaps& caps, std::string* why) {
  PassMode mode = ResolvePassMode(requested, caps, why);
  if (mode == PassMode::kCopy) return mode;
  if (tls_listener) {
    *why = "TLS listener: the tunnel's bytes pass through TLS in the data plane";
    return PassMode::kCopy;
  }
  if (!caps.fd_install) {
    *why =
        "IORING_OP_FIXED_FD_INSTALL unavailable: the client's direct descriptor "
        "cannot go into a map or a splice";
    return PassMode::kCopy;
  }
  return mode;
}

const char* TunnelFallbackName(TunnelFallback reason) {
  switch (reason) {
    case TunnelFallback::kClientTls:
      return "client_tls";
    case TunnelFallback::kUpstreamTls:
      return "upstream_tls";
    case TunnelFallback::kNoFdInstall:
      return "no_fd_install";
    case TunnelFallback::kFdInstallFailed:
      return "fd_install_failed";
    case TunnelFallback::kSockmapPairing:
      return "sockmap_pairing";
    case TunnelFallback::kSplicePipe:
      return "splice_pipe";
    case TunnelFallback::kHalfClosed:
      return "half_closed";
    case TunnelFallback::kQueuedBytes:
      return "queued_bytes";
    case TunnelFallback::kLocalHop:
      return "local_hop";
    case TunnelFallback::kCount:
      break;
  }
  return "unknown";
}

}  // namespace zproxy::dataplane
