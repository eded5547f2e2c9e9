// Listeners with original_destination and clusters of type original_destination
// (docs/sidecar.md): the client's original destination is learned once per connection
// right after accept, and each exchange of such a cluster goes to it (no balancer): on a
// pooled connection to that same destination (the cluster's DestinationSlots say which
// pool slot holds it), else on a new one. A connection that was not redirected has none,
// and is refused rather than forwarded back to the listener it came in on.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>

#include "common/log.h"
#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {

void Worker::LearnOriginalDst(uint32_t conn_idx, bool fixed) {
  Conn& c = conns_.Get(conn_idx);
  sidecar::SockAddr dst{};
  sidecar::DstSource source = sidecar::DstSource::kUnknown;
  // A listener that gained original_destination by a config change may still have a
  // direct-descriptor accept armed: such a connection has no fd to ask.
  if (!fixed) {
    socklen_t len = sizeof(c.peer);
    if (getpeername(c.fd, reinterpret_cast<sockaddr*>(&c.peer), &len) != 0) {
      c.peer.sin6_family = AF_UNSPEC;
      stats_.peername_failures.Add();
    }
    sidecar::SockAddr peer{};
    memcpy(&peer, &c.peer, sizeof(c.peer));
    source = sidecar::Recover(c.fd, peer, options_.passthrough.orig_by_peer_fd, &dst);
  }
  stats_.original_dst[static_cast<int>(source)].Add();
  bool usable =
      source == sidecar::DstSource::kBpfMap || source == sidecar::DstSource::kSoOriginalDst;
  orig_dsts_.Set(conn_idx, c.gen, usable, dst);
}

bool Worker::ConnectOriginalDst(uint32_t ex_idx, bool fresh) {
  Exchange& ex = exchanges_.Get(ex_idx);
  const Conn& c = conns_.Get(ex.client);
  const sidecar::SockAddr* dst = orig_dsts_.Get(ex.client, c.gen);
  if (dst == nullptr) return false;
  ClusterState& cs = Cs(ex.cluster);
  // The pool slot of this destination: every connection in it was opened to *dst
  // (destination_slots.h). Tunnels never share upstream connections: they take none.
  uint32_t slot = ex.tunnel.active ? cs.dst_slots.unpooled() : cs.dst_slots.Claim(*dst);
  if (!fresh && cs.dst_slots.Pooled(slot)) {
    uint32_t up = AcquireUpstream(ex.cluster, slot);
    if (up != kNil) {
      stats_.upstream_reused.Add();
      AttachUpstream(ex_idx, up);
      return true;
    }
  }
  NetAddress addr;
  addr.len = sidecar::SockAddrLen(*dst);
  memcpy(&addr.storage, dst, addr.len);
  // ex.endpoint stays kNil: no balancer or outlier bookkeeping applies. The connection's
  // endpoint is the slot (ConnectTo counts it in the slot's live connections).
  ConnectTo(ex_idx, slot, addr);
  return true;
}

ErrorCause Worker::NoUpstreamCause(uint32_t ex_idx) {
  return Cs(exchanges_.Get(ex_idx).cluster).cfg->original_destination
             ? ErrorCause::kNoOriginalDestination
             : ErrorCause::kNoHealthyUpstream;
}

std::string_view Worker::OriginalDstText(const Exchange& ex, char* buf, size_t cap) {
  const sidecar::SockAddr* dst = orig_dsts_.Get(ex.client, conns_.Get(ex.client).gen);
  return dst == nullptr ? std::string_view() : sidecar::Format(*dst, buf, cap);
}

}  // namespace zproxy::dataplane
