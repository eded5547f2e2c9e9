// One io_uring event loop per CPU. A worker owns everything it touches: its ring,
// provided buffers, connections, upstream pools and counters. Workers share only the
// immutable config snapshot and their stats (read by the metrics thread).
//
// The work is split by stage of the data path:
//   worker.cc          loop, completion dispatch, timers, draining, config snapshots
//   client_side.cc     accept, client reads, request heads (HTTP/1 codec) and the proxy
//                      stream's start (limits, routing, header policy), request bodies
//   upstream_side.cc   upstream pick and connect (ConnectionPool), response heads and
//                      bodies, failures (decided by dataplane/stream/proxy_stream.h)
//   output_queue.cc    per-socket output queues, send/SEND_ZC, backpressure
//   conn_lifecycle.cc  closing connections and releasing what they hold
//   limits.cc          Route.rate_limit and Listener.max_connections, checked against
//                      the process's shared buckets and counters (dataplane/ratelimit/)
// Per-cluster state (balancer, pool, outlier detection) is ClusterStates (clusters_).
// TLS is a layer of its own between the byte layer and the codecs (tls_, a friend:
// dataplane/transport/tls_layer.h). HTTP CONNECT up to its 200 is ConnectRequests
// (dataplane/connect/, connect_). Tunnels (tcp_proxy, WebSocket after 101, CONNECT after
// 200) are their own class, Tunnels in dataplane/tunnel/, which this worker owns (tunnels_).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/connect/connect_requests.h"
#include "dataplane/dns/resolver.h"
#include "dataplane/h2/h2_sessions.h"
#include "dataplane/h2/h2_upstreams.h"
#include "dataplane/http1/http1.h"
#include "dataplane/io/buffer_ring.h"
#include "dataplane/io/ring.h"
#include "dataplane/io/user_data.h"
#include "dataplane/metrics/worker_stats.h"
#include "dataplane/proxy/header_changes.h"
#include "dataplane/proxy/header_policy.h"
#include "dataplane/proxy/passthrough_mode.h"
#include "dataplane/proxy/request_id.h"
#include "dataplane/snapshot.h"
#include "dataplane/stream/proxy_stream.h"
#include "dataplane/tls/session_cache.h"
#include "dataplane/transport/tls_layer.h"
#include "dataplane/tunnel/tunnels.h"
#include "dataplane/upstream/lb.h"
#include "dataplane/worker/access_log.h"
#include "dataplane/worker/block_pool.h"
#include "dataplane/worker/cluster_states.h"
#include "dataplane/worker/conn.h"
#include "dataplane/worker/log_limiter.h"
#include "dataplane/worker/original_dsts.h"
#include "dataplane/worker/slab.h"
#include "dataplane/worker/timer_list.h"

namespace zproxy::dataplane {

struct WorkerListenSocket {
  int fd;
  uint16_t listener;  // index into the snapshot's listeners
};

struct WorkerOptions {
  uint32_t index = 0;
  int cpu = -1;  // pin to this CPU (-1 = no pinning)
  io::RingOptions ring;
  uint32_t buf_count = 1024;
  uint32_t buf_size = 32768;
  int access_log_fd = -1;        // shared by all workers; -1 = no access log
  bool access_log_json = false;  // access_log_format: json
  // Map fds for sockmap pass-through (shared, owned by main); splice is and-ed with the
  // ring's own probe.
  PassthroughCaps passthrough;
  // The process's resolver for CONNECTs to host names (owned by main; null = names get
  // 502 "cannot resolve").
  dns::Resolver* resolver = nullptr;
};

class Worker {
 public:
  Worker(WorkerOptions options, std::shared_ptr<const Snapshot> snapshot,
         std::vector<WorkerListenSocket> sockets);
  ~Worker();

  // Creates the ring and buffers. Call on the worker's own thread (SINGLE_ISSUER).
  bool Init(std::string* error);
  // Runs until Stop() and the drain finish (or the drain deadline passes).
  void Run();
  // Thread-safe: stop accepting, finish in-flight requests, close idle connections.
  void Stop(uint32_t drain_timeout_ms);
  // Thread-safe: the worker switches to `snapshot` for new requests at its next loop
  // iteration; applied_version() / applied_generation() then report it.
  void PostSnapshot(std::shared_ptr<const Snapshot> snapshot);
  uint64_t applied_version() const { return applied_version_.load(); }
  uint64_t applied_generation() const { return applied_generation_.load(); }

  const WorkerStats& stats() const { return stats_; }
  uint32_t index() const { return options_.index; }
  const io::RingFeatures& features() const { return ring_.features(); }

 private:
  // The TLS layer drives the worker's machinery (ring, blocks, timers, closing) and hands
  // plaintext to the codecs.
  friend class transport::TlsLayer;

  // --- worker.cc
  void Dispatch(io_uring_cqe* cqe);
  void OnTick();
  void StartDrain();
  void ArmTick();
  void ArmAccept(uint32_t socket_index);
  // Regular (not direct) descriptors for TLS and tcp_proxy listeners; the accept's
  // user_data says which (bid 1), and cancelling it must use the same user_data.
  bool RegularAccept(uint32_t socket_index) const;
  uint64_t AcceptUd(uint32_t socket_index) const;
  uint32_t NowMs() const { return now_ms_; }
  void UpdateNow();
  void OnTimeout(uint32_t conn_idx, uint16_t list);

  // --- original_dst.cc: listeners with original_destination, clusters of that type
  // Recovers the client's original destination right after accept (regular fd): its
  // address too, synchronously (the by-peer map needs it).
  void LearnOriginalDst(uint32_t conn_idx, bool fixed);
  // Sends the exchange to its client's original destination, on a pooled connection to it
  // unless `fresh` (a retry after a stale one), else on a new one; false when there is
  // none (not redirected, or unknown): the caller answers NoUpstreamCause.
  bool ConnectOriginalDst(uint32_t ex_idx, bool fresh = false);
  // Why AssignUpstream found no upstream for the exchange.
  ErrorCause NoUpstreamCause(uint32_t ex_idx);
  // The access log's upstream field of an exchange to an original destination.
  std::string_view OriginalDstText(const Exchange& ex, char* buf, size_t cap);

  // --- client_side.cc
  void OnAccept(uint32_t socket_index, io_uring_cqe* cqe);
  void OnPeerName(uint32_t conn_idx, int res);
  void ProcessClientInput(uint32_t conn_idx);
  // HTTP/1 codec, server side: decodes a request head from the client's input (false:
  // incomplete, nothing consumed); errors are answered here.
  bool DecodeRequestHead(uint32_t conn_idx, std::string_view data, bool assembled);
  // The proxy stream of a decoded request: limits, CONNECT, routing, header policy, the
  // upstream request, then an upstream. Knows nothing of the request's wire format.
  void StartStream(uint32_t conn_idx, codec::http1::RequestHeadEvent& ev);
  // What the codecs share of a stream's start: body limit, route, header policy, the
  // upstream's HTTP/1 request head, the cluster. false: answer `refusal` locally.
  struct Refusal {
    int status = 0;
    std::string_view body;
    std::string_view note;
    // A route's own answers (redirect, direct response) say more than an error does.
    std::string_view content_type;             // "" = text/plain
    std::span<const http::Field> fields;       // Location, response header changes
    bool keep_alive = false;                   // the client's connection may carry another request
    bool omit_body = false;                    // a HEAD request
    std::string_view request_id, traceparent;  // for the access log line
    uint32_t retry_after_s = 0;  // Retry-After (seconds) when non-zero (429 rate limited)
  };
  bool RouteRequest(uint32_t ex_idx, http::RequestHead& req, Refusal* refusal);
  // HTTP/1: a refusal (or a route's own answer) as the response, then per `close`.
  void SendLocalResponse(uint32_t conn_idx, const Refusal& r, bool close,
                         std::string_view request_line);
  // A route that answers itself (redirect, direct response), as a refusal to send.
  void AnswerFromRoute(const routing::RouteEntry& route, const http::RequestHead& req, Exchange& ex,
                       Refusal* refusal);
  // The request's X-Request-Id (the client's, or a new one) into ex.request_id; true when
  // a new one must be set on the upstream request.
  bool TakeRequestId(Exchange& ex, const ListenerRuntime& listener, const http::RequestHead& req);
  // What header values' ${variables} stand for in this exchange (ip: room for an address).
  proxy::Variables VariablesOf(const Exchange& ex, char* ip, size_t ip_cap);
  // The route's and cluster's response header changes on a response head going to the
  // client (fields rewritten into resp_fields_). Leaves the head alone if they do not fit.
  void ApplyResponseChanges(const Exchange& ex, http::ResponseHead& resp);
  bool StartsHttp2(uint32_t conn_idx);
  void RejectRequest(uint32_t conn_idx, http1::Error error, std::string_view request_line = {});
  void SendLocalResponse(uint32_t conn_idx, int status, std::string_view body, bool close,
                         std::string_view request_line = {}, std::string_view note = {});
  // Access log lines for an exchange (upstream answer or error) and for zproxy's own
  // answers to requests that never became an exchange.
  void LogExchange(Exchange& ex, int status, std::string_view note);
  uint64_t NowUs() const;
  std::string_view ClientIp(Conn& c, char* buf, size_t cap);
  void PumpRequestBody(uint32_t ex_idx);
  void FinishExchange(uint32_t ex_idx);
  void ClientIdle(uint32_t conn_idx);

  // End of a client's byte stream (res == 0: FIN or TLS close_notify; < 0: error).
  void OnClientEof(uint32_t conn_idx, int res);

  // --- upstream_side.cc
  // What the proxy stream's decisions (dataplane/stream) need to know about an exchange.
  stream::StreamProgress Progress(const Exchange& ex) const;
  bool AssignUpstream(uint32_t ex_idx);
  void RespondUpstreamError(uint32_t ex_idx, ErrorCause cause);
  void StartConnect(uint32_t ex_idx, uint32_t endpoint);
  // Opens the upstream socket of an exchange towards `addr` (an endpoint's, or a CONNECT
  // target's with endpoint 0 of the listener's connect state).
  // deadline_ms != 0: the connect times out then (a CONNECT's later addresses share the
  // first attempt's deadline) rather than after the cluster's connect timeout.
  void ConnectTo(uint32_t ex_idx, uint32_t endpoint, const NetAddress& addr,
                 uint32_t deadline_ms = 0);
  void OnConnect(uint32_t conn_idx, int res);
  // A connect the kernel failed with `err` (positive errno): counted by errno and logged,
  // one line a second at most (a dead endpoint fails every connect).
  void NoteConnectFailure(uint32_t conn_idx, int err);
  void AttachUpstream(uint32_t ex_idx, uint32_t up_idx);
  void UpstreamFailed(uint32_t ex_idx, ErrorCause cause, bool may_retry);
  void ProcessUpstreamInput(uint32_t conn_idx);
  bool ParseResponseHead(uint32_t ex_idx, std::string_view data, size_t* consumed);
  void PumpResponseBody(uint32_t ex_idx);
  void OnUpstreamEof(uint32_t conn_idx, int err);
  void ReleaseUpstream(uint32_t ex_idx, bool reusable);
  // A pooled connection of `endpoint` with room for the exchange's stream (kNil: none).
  uint32_t AcquireUpstream(uint16_t cluster, uint32_t endpoint);

  // --- output_queue.cc
  bool QueueOut(uint32_t conn_idx, const char* data, uint32_t len, ItemOwner owner, uint32_t ref);
  void Flush(uint32_t conn_idx);
  void OnSend(uint32_t conn_idx, int res, bool zc);
  // A SEND_ZC the kernel refused (nothing was sent): the same bytes go again with a plain
  // send; after kZcRefusalsBeforeOff refusals the worker stops using SEND_ZC.
  void OnZcRefused(uint32_t conn_idx, int res);
  void ReleaseItem(const OutItem& item);
  uint32_t OutCount(uint32_t conn_idx);
  bool OutHasRoom(uint32_t conn_idx);
  ConnIo& Io(uint32_t conn_idx);
  void OnRecv(uint32_t conn_idx, io_uring_cqe* cqe);
  void ArmRecv(uint32_t conn_idx);
  void PauseRecv(uint32_t conn_idx);
  void MaybeResumeRecv(uint32_t conn_idx);
  void BufRef(uint16_t bid) { buf_refs_[bid]++; }
  void RearmEnobufsWaiters();
  void BufUnref(uint16_t bid);
  void ConsumeIn(uint32_t conn_idx, size_t n);
  InSlice& InFront(ConnIo& io) { return slices_.Get(io.in_head).slice; }
  void InPushBack(ConnIo& io, const InSlice& s);
  void InPushFront(ConnIo& io, const InSlice& s);
  void InPopFront(ConnIo& io);  // does not release the slice's memory
  void DropInput(uint32_t conn_idx);
  void ReleaseIoIfIdle(uint32_t conn_idx);
  void ReleaseConnectIo(uint32_t conn_idx);
  // Merges the input slices into one block so an incomplete head is parsed from
  // contiguous memory and holds at most one receive buffer.
  void CoalesceInput(uint32_t conn_idx);
  const char* SliceData(const InSlice& s) {
    return (s.is_block ? blocks_.Data(s.ref) : bufs_.Data(static_cast<uint16_t>(s.ref))) + s.off;
  }
  void ReleaseSlice(const InSlice& s) {
    if (s.is_block)
      blocks_.Free(s.ref);
    else
      BufUnref(static_cast<uint16_t>(s.ref));
  }
  // Queues bytes of the front input slice of `from` towards `to` (shared buffer or copy).
  bool ForwardFront(uint32_t from, uint32_t to, size_t n);
  // Runs write(buf, cap) -> length (0 = did not fit) into a small block, retrying in a
  // large one. Returns the block and sets *len; on failure frees it and returns kNil.
  template <typename WriteFn>
  uint32_t WriteIntoBlock(WriteFn&& write, size_t* len) {
    uint32_t b = blocks_.Alloc(0);
    *len = write(blocks_.Data(b), blocks_.Capacity(b));
    if (*len != 0) return b;
    blocks_.Free(b);
    b = blocks_.AllocLarge();
    *len = write(blocks_.Data(b), blocks_.Capacity(b));
    if (*len != 0) return b;
    blocks_.Free(b);
    return kNil;
  }
  // Queues `data` (which lies inside slice `s`) towards `to`, sharing the buffer.
  bool QueueFromSlice(uint32_t to, const InSlice& s, std::string_view data);
  size_t InBytes(uint32_t conn_idx);

  // --- route_retries.cc: a route's timeout_ms and retry policy.
  // Arms the route's deadlines for a new exchange (after RouteRequest).
  void StartRouteTimers(uint32_t ex_idx);
  // A try begins on an upstream: its per-try deadline.
  void StartTry(uint32_t ex_idx);
  // The response head arrived: the deadlines are done with.
  void EndRouteTimers(uint32_t ex_idx);
  // The route's policy retries this failure: the upstream is let go and the exchange
  // tries again after a backoff. false: not retried (the caller answers as before).
  bool TryPolicyRetry(uint32_t ex_idx, stream::RetryTrigger trigger, uint16_t status = 0);
  // Whether a response head with this status is retried (then it was, and the caller
  // drops the response).
  bool RetryOnStatus(uint32_t ex_idx, uint16_t status);
  void CheckDeadlines();
  void LinkDeadline(uint32_t ex_idx);
  void UnlinkDeadline(uint32_t ex_idx);
  uint32_t deadlines_head_ = kNil;

  // --- snapshot_holds.cc: exchanges keep the snapshot of their route (its policy) alive
  // across config changes; the current snapshot's hold is shared by every new exchange.
  uint16_t HoldSnapshot();
  void ReleaseSnapshot(uint16_t hold);
  uint16_t NewSnapshotHold(std::shared_ptr<const Snapshot> snap);
  // --- limits.cc: Route.rate_limit and Listener.max_connections (dataplane/ratelimit/)
  // The route's rate limit (route.policy->has_rate_limit): true = allowed; false = answer
  // `refusal` (429 with Retry-After).
  bool AllowRate(const routing::RouteEntry& route, Conn& c, const http::RequestHead& req,
                 Refusal* refusal);
  // A client connection just accepted on `listener`: counted (true), or over the
  // listener's max_connections: closed and counted as refused (false).
  bool AdmitConnection(uint16_t listener, int fd, bool fixed);
  // A counted client connection has closed (CloseConn, once per connection).
  void ReleaseConnection(uint16_t listener);

  // --- conn_lifecycle.cc
  uint32_t NewConn(ConnKind kind, int fd, uint16_t owner);
  void CloseConn(uint32_t conn_idx);
  // Makes the coming close of a client connection a reset (SO_LINGER 0): for a response
  // the client frames by the close, a FIN after a cut would read as a complete body.
  void ResetOnClose(uint32_t conn_idx);
  void SubmitClose(uint32_t conn_idx);
  // shutdown(SHUT_WR) through the ring, counted as in flight: the kernel runs it
  // asynchronously, so the descriptor stays open (and its slot unreused) until it is done.
  void ShutdownWrite(uint32_t conn_idx);
  void OnShutdown(uint32_t conn_idx);
  // Close after a response the client may not have finished sending to (errors, unread
  // bodies): shut down our side, discard what still arrives, then close. Closing with
  // unread data makes the kernel send RST, which can destroy the response in flight.
  void LingeringClose(uint32_t conn_idx);
  void MaybeFreeConn(uint32_t conn_idx);
  void AbortExchange(uint32_t ex_idx, bool close_client);
  void FreeExchange(uint32_t ex_idx);
  uint64_t Ud(io::Op op, uint32_t conn_idx) const;

  WorkerOptions options_;
  std::shared_ptr<const Snapshot> snap_;
  std::vector<WorkerListenSocket> sockets_;
  io::Ring ring_;
  io::BufferRing bufs_;
  std::vector<uint16_t> buf_refs_;
  WorkerStats stats_;
  AccessLog access_log_;

  Slab<Conn, 1024> conns_;
  transport::TlsLayer tls_{*this, conns_};  // after conns_: it keeps a reference
  Slab<ConnIo, 64> ios_;
  Slab<SliceNode, 1024> slices_;
  Slab<Exchange, 256> exchanges_;
  BlockPool blocks_;
  // Decoded heads' fields, and the upstream request's after the header policy, with the
  // policy's scratch (a merged X-Forwarded-For): per worker, reused by every request.
  http::Field header_storage_[128];
  http::Field policy_fields_[128 + proxy::kPolicyExtraFields];
  std::vector<char> policy_scratch_;
  // Route policy: the request after header changes (+ X-Request-Id), expanded values, the
  // rewritten target; a response head's fields after its changes; a route's own answer.
  static constexpr size_t kMaxChangedFields = 128 + proxy::kPolicyExtraFields + 72;
  http::Field change_fields_[kMaxChangedFields];
  std::vector<char> change_scratch_;
  std::vector<char> rewrite_buf_;
  http::Field resp_fields_[kMaxChangedFields];
  std::vector<char> resp_scratch_;
  http::Field local_fields_[H2Sessions::kMaxLocalExtraFields];
  std::vector<char> local_scratch_;
  proxy::RequestIdGenerator request_ids_;
  routing::HeaderChanges request_id_change_;  // set X-Request-Id: ${request_id}
  struct SnapshotHold {
    std::shared_ptr<const Snapshot> snap;
    uint32_t exchanges = 0;
  };
  std::vector<SnapshotHold> snap_holds_;
  uint16_t current_hold_ = 0;

  ConnTimers timers_;
  // Timer list ids: per listener (idle, header) and per cluster (connect, read, pool).
  std::vector<uint16_t> t_client_idle_, t_client_header_, t_tls_handshake_, t_connect_idle_;
  std::vector<uint16_t> t_client_hello_;  // tcp_proxy with sni_routes: client_hello_timeout_ms
  uint16_t t_linger_ = 0;
  uint16_t t_drain_idle_ = 0;

  // Per cluster definition: balancer, pool, outlier detection (cluster_states.h).
  ClusterStates clusters_;
  ClusterState& Cs(uint16_t id) { return clusters_.Get(id); }
  void RefCluster(uint16_t id) { clusters_.Ref(id); }
  void UnrefCluster(uint16_t id) { clusters_.Unref(id); }
  void RecordUpstreamResult(uint16_t cluster, uint32_t endpoint, bool ok) {
    clusters_.RecordResult(cluster, endpoint, ok, NowMs());
  }
  // Config snapshots (worker.cc): the mailbox ConfigApplier fills, and applying one.
  void ApplySnapshot(std::shared_ptr<const Snapshot> snap);
  void SetupListenerTimers();
  void ArmWake();
  void OnWake();

  __kernel_timespec tick_ts_{};
  uint32_t now_ms_ = 0;
  uint64_t start_ns_ = 0;
  std::atomic<bool> stop_requested_{false};
  std::mutex mailbox_mu_;
  std::shared_ptr<const Snapshot> mailbox_;
  std::atomic<uint64_t> applied_version_{0};
  std::atomic<uint64_t> applied_generation_{0};
  int wake_fd_ = -1;  // eventfd: PostSnapshot wakes the loop
  uint64_t wake_buf_ = 0;
  std::atomic<uint32_t> drain_timeout_ms_{0};
  bool draining_ = false;
  uint32_t drain_deadline_ms_ = 0;
  bool running_ = true;
  bool peername_warned_ = false;
  OriginalDsts orig_dsts_;  // client connections of original_destination listeners
  // Out of descriptors, every accept or connect fails: one line a second each.
  LogLimiter accept_log_, fd_table_log_, socket_log_, connect_log_;
  // SEND_ZC refusals (ENOMEM, ENOBUFS, EOPNOTSUPP) so far; zc_off_ once there were enough
  // to call them the rule here rather than a passing shortage.
  static constexpr uint32_t kZcRefusalsBeforeOff = 4;
  uint32_t zc_refusals_ = 0;
  bool zc_off_ = false;
  std::vector<bool> accept_armed_;
  std::vector<uint64_t> accept_ud_;  // user_data of each socket's armed accept
  // tcp_proxy listeners accept into normal fds (sockmap and splice need real descriptors;
  // a direct descriptor cannot go into a BPF map).
  std::vector<bool> accept_plain_;
  // tcp_proxy, WebSocket and CONNECT tunnels (dataplane/tunnel/): called for their
  // completions and ends, they call back into the worker's I/O and teardown.
  friend class Tunnels;
  Tunnels tunnels_{*this};
  // HTTP/2 client connections and their streams (dataplane/h2/).
  friend class H2Sessions;
  H2Sessions h2_{*this};
  // HTTP/2 upstream connections and their streams (dataplane/h2/upstream*.cc).
  friend class H2Upstreams;
  H2Upstreams h2up_{*this};
  // The exchange lets go of its upstream: an HTTP/1 connection is closed (its state is
  // unknown), an HTTP/2 stream is reset and the connection kept for its other streams.
  void CloseUpstreamOf(uint32_t ex_idx);
  // HTTP CONNECT up to its 200 (dataplane/connect/connect_requests.h).
  friend class ConnectRequests;
  ConnectRequests connect_{*this};
  std::vector<int> socket_family_;
  // Connections whose receive ended with ENOBUFS: re-armed once buffers come back (after
  // a loop iteration that recycled some, or on the next tick), not in a tight loop.
  std::vector<std::pair<uint32_t, uint16_t>> enobufs_waiters_;
  uint64_t recycled_ = 0;
};

}  // namespace zproxy::dataplane
