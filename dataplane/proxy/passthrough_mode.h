// Which pass-through mode a tcp_proxy connection uses: the listener asks for one
// (TcpProxy.mode), the process has what the kernel and zproxyd gave it, and the answer
// falls back along sockmap -> splice -> copy. Pure policy, no I/O.
#pragma once

#include <cstdint>
#include <string>

#include "zproxy/v1/config.pb.h"

namespace zproxy::dataplane {

enum class PassMode : uint8_t { kCopy = 0, kSplice = 1, kSockmap = 2 };
inline constexpr int kPassModeCount = 3;

const char* PassModeName(PassMode mode);

// What this data plane can do, fixed at startup.
struct PassthroughCaps {
  // Map fds from zproxyd (bootstrap); -1 = zproxyd has no BPF (no CAP_BPF, no bpffs).
  int pairs_fd = -1;
  int peer_fd = -1;
  int counters_fd = -1;
  bool splice = true;  // IORING_OP_SPLICE supported by the ring
  // IORING_OP_FIXED_FD_INSTALL (6.8+): a regular fd for an HTTP listener's direct
  // descriptor, which WebSocket/CONNECT tunnels need for sockmap and splice.
  bool fd_install = true;
  bool sockmap() const { return pairs_fd >= 0 && peer_fd >= 0; }
  // Last, so that positional initializers of the fields above keep their meaning.
  // Not a pass-through map but handed over with them: the sidecar's zproxy_orig_by_peer
  // (client address -> original destination, docs/sidecar.md); -1 = no sidecar programs.
  int orig_by_peer_fd = -1;
  // The sidecar's zproxy_lh_socks (sk_msg local hops); -1 = sk_msg off.
  int local_hops_fd = -1;
};

// What `auto` means: the fastest modes measured on the development kernel (6.18) with
// bench/run-passthrough (bench/RESULTS.md "Pass-through"): sockmap (as fast as or faster than
// copy, at ~0 data plane CPU), else copy (io_uring splice was the slowest mode there: each
// splice is a hop through an io-wq thread). An explicit `mode: sockmap` without BPF falls
// back to splice, then copy, as documented.
inline constexpr PassMode kAutoMode = PassMode::kSockmap;
inline constexpr PassMode kAutoFallback = PassMode::kCopy;

// The mode to use for `requested` given `caps`. When it is not the one asked for (or the
// one `auto` prefers), *why says what was missing, for the one log line per listener.
PassMode ResolvePassMode(zproxy::v1::PassthroughMode requested, const PassthroughCaps& caps,
                         std::string* why);

// The mode of WebSocket/CONNECT tunnels on an HTTP listener (Listener.tunnel_mode): the same
// resolution, and copy where the client's socket cannot leave the data plane's hands (a TLS
// listener: the bytes are decrypted in userspace) or cannot become a regular fd (no
// IORING_OP_FIXED_FD_INSTALL).
PassMode ResolveTunnelMode(zproxy::v1::PassthroughMode requested, bool tls_listener,
                           const PassthroughCaps& caps, std::string* why);

// Why a WebSocket/CONNECT/tcp_proxy tunnel did not get its listener's mode
// (zproxy_tunnel_fallbacks_total{reason}).
enum class TunnelFallback : uint8_t {
  kClientTls,        // the client speaks TLS through the data plane: copy
  kUpstreamTls,      // the cluster has tls: the bytes pass through BoringSSL: copy
  kNoFdInstall,      // no IORING_OP_FIXED_FD_INSTALL for the client's direct descriptor
  kFdInstallFailed,  // the install failed (e.g. EMFILE): copy
  kSockmapPairing,   // IPv6, a full SOCKHASH, bpf() refused: splice
  kSplicePipe,       // no pipe (EMFILE): copy
  kHalfClosed,       // a FIN went by before the pairing: the kernel pairs only ESTABLISHED
                     // sockets (sockmap -> splice)
  kQueuedBytes,      // WebSocket/CONNECT: bytes queued behind ones userspace read at the
                     // pairing; the verdict would resend a partly read skb (-> splice)
  kLocalHop,         // a socket its local peer's sk_msg redirects into: only a receive
                     // reads those bytes, not the sk_skb verdict or splice (-> copy)
  kCount,
};
const char* TunnelFallbackName(TunnelFallback reason);

}  // namespace zproxy::dataplane
