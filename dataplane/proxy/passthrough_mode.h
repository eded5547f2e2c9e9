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
  bool sockmap() const { return pairs_fd >= 0 && peer_fd >= 0; }
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

}  // namespace zproxy::dataplane
