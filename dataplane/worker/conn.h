// Per-worker connection state. Kept small on purpose: an idle keep-alive client
// connection is just a Conn (no buffers, no queues), which is how memory per idle
// connection stays in the tens of bytes. Queues (ConnIo) and request state (Exchange)
// are attached from pools only while a connection is busy.
#pragma once

#include <netinet/in.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "common/connect_allow.h"
#include "dataplane/codec/http1/client_stream.h"
#include "dataplane/codec/http1/server_stream.h"
#include "dataplane/dns/resolver.h"
#include "dataplane/routing/route_table.h"
#include "dataplane/stream/proxy_stream.h"
#include "dataplane/tunnel/tunnel_state.h"
#include "dataplane/upstream/connection_pool.h"
#include "dataplane/worker/slab.h"
#include "dataplane/worker/timer_list.h"

namespace zproxy::dataplane {

enum class ConnKind : uint8_t { kClient, kUpstream };

enum ConnFlag : uint16_t {
  kRecvArmed = 1 << 0,         // a multishot recv is active
  kSendInflight = 1 << 1,      // one send at a time per socket (ordering)
  kClosing = 1 << 2,           // close started; slot freed when no op is in flight
  kFixedFile = 1 << 3,         // fd is an index into the registered file table
  kRecvPaused = 1 << 4,        // backpressure: do not re-arm recv
  kCloseAfterSend = 1 << 5,    // close once the output queue has drained
  kConnecting = 1 << 6,        // upstream connect in flight
  kPooled = 1 << 7,            // idle in its cluster's ConnectionPool (pool timeout armed)
  kReused = 1 << 8,            // upstream connection served an earlier request
  kPeerPending = 1 << 9,       // SO_PEERNAME request in flight
  kCancelSent = 1 << 10,       // recv cancel already submitted
  kLingerNeeded = 1 << 11,     // the client may still be sending: linger before closing
  kLingering = 1 << 12,        // write side shut down; reading and discarding until EOF
  kShutdownPending = 1 << 13,  // IORING_OP_SHUTDOWN in flight (it runs on io-wq, later)
  kCloseDeferred = 1 << 14,    // close waits for the shutdown: the fixed-file slot must
                               // not be reused while an op that names it is pending
  kPassthrough = 1 << 15,      // sockmap/splice pass-through: polls and splices may be
                               // pending on the (real) fd; closing cancels them by fd
};

struct Conn {
  uint16_t gen = 0;
  ConnKind kind = ConnKind::kClient;
  uint8_t inflight = 0;  // ops whose final CQE has not arrived
  uint16_t flags = 0;
  uint16_t owner = 0;  // listener index (client) or cluster index (upstream)
  int32_t fd = -1;
  union {
    uint32_t endpoint = 0;  // upstream: its endpoint index
    uint32_t h2;            // client: its HTTP/2 session index + 1 (0: HTTP/1)
  };
  uint32_t exchange = kNil;
  uint32_t io = kNil;   // ConnIo index
  uint32_t tls = kNil;  // TlsConn index (client on a TLS listener)
  TimerLink timer;
  union {
    sockaddr_in6 peer{};  // client: its address (v4 as sockaddr_in) for X-Forwarded-For
    struct {
      upstream::PoolLink pool;  // upstream: its place in the cluster's ConnectionPool
      uint32_t up_h2;           // upstream: its HTTP/2 session index + 1 (0: HTTP/1)
    };
  };

  // Slab contract: reset all but the generation, which only ever grows.
  void Reset() {
    uint16_t g = gen;
    *this = Conn();
    gen = g;
  }
};
// What an idle keep-alive connection costs in userspace (besides the kernel's socket).
static_assert(sizeof(Conn) <= 72, "Conn grew: memory per idle connection");

// Owner of the memory an output item points to, released when the item has been sent.
enum class ItemOwner : uint8_t { kStatic, kBuffer, kBlock };

struct OutItem {
  const char* data;
  uint32_t len;
  ItemOwner owner;
  uint32_t ref;  // buffer id or block index
};

// Received bytes not consumed yet: a window into a provided buffer.
// Usually a provided buffer; a block when a head arrived in pieces and was coalesced.
struct InSlice {
  uint32_t ref;  // buffer id, or block index when is_block
  uint32_t off;
  uint32_t len;
  bool is_block;
};

// Input slices form a linked list of worker-pooled nodes: every slice pins a provided
// buffer (or a block), so their number is bounded by the buffer ring, not by a per-
// connection array that a burst of completions could overflow.
struct SliceNode {
  InSlice slice;
  uint32_t next = kNil;
  void Reset() { next = kNil; }
};

constexpr uint32_t kOutCap = 24;
// 1xx responses one request may get (100 Continue, 103 Early Hints, ...) before the
// upstream counts as broken (502).
constexpr uint8_t kMaxInterimResponses = 16;
constexpr uint32_t kMaxIov = 8;
// Backpressure: stop reading a socket while this much of its input waits for its peer.
constexpr uint32_t kInPauseAt = 8;
constexpr uint32_t kInResumeAt = 4;
// Do not queue more than this many items towards a socket; the rest waits as input.
constexpr uint32_t kOutLimit = 12;

struct ConnIo {
  OutItem out[kOutCap];
  uint32_t out_head = 0, out_count = 0;
  uint16_t zc_bid = 0;  // buffer id + 1 of the SEND_ZC in flight (0 = plain send)
  // The kernel refused a SEND_ZC of the front item: its next send is a plain one.
  bool zc_retry_plain = false;
  uint32_t in_head = kNil, in_tail = kNil, in_count = 0;  // SliceNode list
  // The last receive filled its whole buffer, so it may have stopped inside an skb (a
  // shorter one drained the queue): the sockmap hand-over must not pair behind it.
  bool last_recv_full = false;
  iovec iov[kMaxIov];
  msghdr msg{};
  // An upstream connect's destination, from ConnectTo until its completion: the kernel
  // reads the sockaddr when the SQE is submitted (the loop's next submit), not when it is
  // prepared, and a CONNECT target's address is the caller's temporary. Without this copy
  // the kernel read a reused stack slot: EAFNOSUPPORT, or an AF_UNSPEC "connect" that
  // succeeds on an unconnected socket (bench/RESULTS.md, soak).
  union {
    sockaddr_in v4;
    sockaddr_in6 v6;
  } connect_to{};
  using ConnectAddress = decltype(connect_to);

  void Reset() {
    out_head = out_count = 0;
    zc_retry_plain = false;
    in_head = in_tail = kNil;
    in_count = 0;
    last_recv_full = false;
  }
  OutItem& OutAt(uint32_t i) { return out[(out_head + i) % kOutCap]; }
};

// A CONNECT to a host name (dataplane/connect/by_name.cc): the name, its addresses once resolved,
// and which one is being tried. Pooled per worker, only while such a CONNECT is in flight.
struct ConnectTarget {
  ConnectName name;
  dns::Addrs addrs;
  uint32_t exchange = kNil;
  uint32_t seq = 0;          // in the resolver's token: an answer for an earlier use is stale
  uint32_t deadline_ms = 0;  // resolution and every connect attempt end by then
  uint8_t next = 0;          // next address to try
  uint8_t tried = 0;
  bool by_name = false;    // a name pattern allowed it (else IP patterns filter the addresses)
  bool resolving = false;  // waiting for the resolver

  void Reset() {
    next = tried = 0;
    by_name = resolving = false;
    exchange = kNil;
    addrs.count = 0;
    addrs.error = 0;
  }
};

// Body bytes waiting in a list of slices (SliceNode), each holding its buffer or block:
// an HTTP/2 stream's request data until the upstream takes it, its response data until
// the client's window does.
struct SliceList {
  uint32_t head = kNil, tail = kNil, count = 0;
  uint64_t bytes = 0;
};

// Where the exchange's response is: the proxy stream's own phases.
using RespState = stream::ResponsePhase;

// One request/response in flight between a client connection and an upstream one.
struct Exchange {
  uint32_t client = kNil;
  uint32_t upstream = kNil;
  uint16_t cluster = 0;
  uint32_t endpoint = kNil;
  uint32_t failed_endpoint = kNil;
  uint8_t attempts = 0;
  bool lb_counted = false;

  // The HTTP/1 codec's state of this request on each side: towards the client (its
  // version, keep-alive, the request body's framing, the response's framing) and towards
  // the upstream (the response's framing, whether the connection is reusable).
  codec::http1::ServerStream down;
  codec::http1::ClientStream up;

  // Request
  bool head_queued = false;  // request head handed to the upstream's output queue
  bool req_done = false;     // whole request (head + body) handed to the upstream
  bool retried_stale = false;
  bool upstream_eof = false;  // close-delimited response: upstream finished
  // HTTP CONNECT (dataplane/connect/request.cc): the upstream is the request's target; once it is
  // connected the client gets 200 and the exchange becomes a tunnel.
  bool connect = false;
  uint32_t target =
      kNil;  // CONNECT to a host name: its ConnectTarget (dataplane/connect/by_name.cc)

  // The client side is an HTTP/2 stream (dataplane/h2/): its id (0: HTTP/1), its place
  // in the session's list of streams, and the bodies waiting on either side.
  int32_t h2_stream = 0;
  uint32_t h2_prev = kNil, h2_next = kNil;
  SliceList req_data;          // request body received, not forwarded upstream yet
  SliceList resp_data;         // response body not framed for the client yet
  uint64_t req_data_seen = 0;  // request body bytes received, for max_body
  bool h2_routed = false;      // holds a cluster reference (FreeExchange releases it)
  bool h2_req_body = false;    // the request has a body
  bool req_end = false;        // the client ended its request (END_STREAM)
  bool req_chunked = false;    // its body goes upstream chunked (no Content-Length)
  bool resp_end = false;       // resp_data holds the rest of the response body
  bool resp_sent = false;      // nghttp2 took the response's last byte
  bool h2_abandoned = false;   // answered or reset early: later request data is dropped
  bool h2_needs_pump = false;  // resp_data had room again: read more from the upstream
  bool h2_rst_sent = false;
  bool h2_shutdown_up = false;  // CONNECT: the client's END_STREAM waits to become a FIN
  bool grpc = false;            // content-type application/grpc: errors are gRPC statuses

  // The upstream side is an HTTP/2 stream (cluster protocol http2, dataplane/h2/
  // upstream.cc): its id on the connection (0: not submitted yet), its place in the
  // connection's list (waiting for the connect, or submitted), its trailers.
  bool up_h2 = false;
  int32_t up_stream = 0;
  uint32_t up_prev = kNil, up_next = kNil;
  bool resp_chunk_encode = false;  // HTTP/1 client, body of unknown length: chunk it
  uint32_t trailer_block = kNil;   // response trailers (request_block.h's format)
  uint32_t trailer_len = 0;
  bool trailer_raw = false;  // trailer_block still holds HTTP/1 trailer lines (as received)

  // Set once the exchange carries opaque bytes (tcp_proxy, WebSocket after 101, CONNECT
  // after 200): mode, half-close and kernel state, owned by dataplane/tunnel/.
  TunnelState tunnel;

  uint64_t max_body = 0;
  uint32_t req_head_block = kNil;  // rewritten request head (kept for a retry)
  uint32_t req_head_len = 0;

  // Response
  RespState resp = RespState::kWaitHead;
  uint8_t interims = 0;       // 1xx responses so far (bounded: kMaxInterimResponses)
  bool resp_started = false;  // a byte of the final response was queued to the client
  uint16_t status = 0;

  // Access log (filled only when it is enabled).
  bool logged = false;
  uint8_t req_line_len = 0;
  uint64_t start_us = 0;
  uint64_t resp_bytes = 0;  // bytes of the response queued to the client

  // The route's policy (response header changes, retries), valid while the worker holds
  // the snapshot it came from (snap_hold, Worker::HoldSnapshot); null until routed.
  const routing::RouteEntry* route = nullptr;
  uint16_t snap_hold = 0;
  // Route timeouts and retries (route_retries.cc): deadlines in worker ms (0 = none), on
  // the worker's deadline list while any is set; checked on its 50 ms tick.
  uint32_t route_deadline_ms = 0;  // timeout_ms: until the response head, over all tries
  uint32_t try_deadline_ms = 0;    // retry.per_try_timeout_ms: this try's
  uint32_t retry_at_ms = 0;        // waiting for a retry's backoff to pass
  uint32_t dl_prev = kNil, dl_next = kNil;
  bool on_deadline_list = false;
  uint8_t policy_retries = 0;                  // retries of the route's policy so far
  http::Method method = http::Method::kOther;  // idempotent or not (retries)
  bool counts_as_retry = false;  // in the cluster's retry budget (ClusterState::retries)
  uint8_t request_id_len = 0;    // X-Request-Id sent upstream (or the client's), request_id
  uint8_t traceparent_len = 0;   // the client's W3C traceparent, for the access log

  // Not cleared by Reset() (read only up to their lengths):
  char req_line[160];
  char request_id[64];
  char traceparent[56];

  void Reset() {
    // req_line is left uninitialized on purpose: it is only read up to req_line_len.
    Exchange fresh;
    memcpy(static_cast<void*>(this), &fresh, offsetof(Exchange, req_line));
  }
};

}  // namespace zproxy::dataplane
