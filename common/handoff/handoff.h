// The bootstrap handoff from zproxyd to zproxy-dataplane: one DataplaneBootstrap message
// plus its listen sockets (SCM_RIGHTS) over a connected unix socket. Used by both
// processes, so it depends on neither YAML nor gRPC.
//
// Wire format (works on SOCK_SEQPACKET and SOCK_STREAM alike, because every piece is a
// separate send whose size the receiver knows in advance):
//   1. header: magic "ZPB1", u32 fd_count, u64 payload_len (host byte order; both ends
//      are the same machine and normally the same build)
//   2. ceil(fd_count / kMaxFdsPerMessage) fd chunks: 1 byte of data each, carrying up to
//      kMaxFdsPerMessage fds (the kernel caps SCM_RIGHTS at 253 per message)
//   3. the serialized DataplaneBootstrap, in pieces of at most kMaxPayloadPiece bytes
// The fds are in the order of bootstrap.sockets, followed by the extra fds the message
// points at (the health region at bootstrap.health_region_fd_index, the splice maps at
// bootstrap.splice_*_fd_index).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "zproxy/v1/dataplane.pb.h"

namespace zproxy::handoff {

inline constexpr size_t kMaxFdsPerMessage = 250;
inline constexpr size_t kMaxPayloadPiece = 32 * 1024;
// A sanity bound so a corrupt header cannot make the receiver allocate gigabytes.
inline constexpr size_t kMaxPayloadBytes = 64 * 1024 * 1024;

// Number of fds that travel with `bootstrap`: its listen sockets plus the extra fds.
size_t ExpectedFdCount(const zproxy::v1::DataplaneBootstrap& bootstrap);

// Sends `bootstrap` and `fds` (fds.size() must equal ExpectedFdCount(bootstrap)). Blocking.
// Uses MSG_NOSIGNAL, so a dead peer is an error (EPIPE), not a SIGPIPE. Returns false with
// a description in *error.
bool SendBootstrap(int sock, const zproxy::v1::DataplaneBootstrap& bootstrap,
                   std::span<const int> fds, std::string* error);

// Receives what SendBootstrap sent. The fds arrive close-on-exec and are owned by *fds,
// in the order of bootstrap->sockets. `timeout_ms` bounds the wait for each piece
// (-1 = wait forever). Returns false with a description in *error; on failure every
// received fd is closed.
bool ReceiveBootstrap(int sock, zproxy::v1::DataplaneBootstrap* bootstrap,
                      std::vector<UniqueFd>* fds, std::string* error, int timeout_ms = -1);

}  // namespace zproxy::handoff
