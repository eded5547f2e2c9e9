#include "dataplane/worker/worker.h"

#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace zproxy::dataplane {

namespace {
constexpr uint32_t kTickMs = 50;
// How long a closing client connection may keep sending before it is closed anyway.
constexpr uint32_t kLingerTimeoutMs = 2000;
// While draining, an idle keep-alive connection is closed after this much idleness.
constexpr uint32_t kDrainIdleMs = 1000;

uint32_t MaxBlockSize(const Snapshot& snap) {
  uint32_t max = 8192;
  for (const auto& l : snap.listeners) max = std::max(max, l.limits.max_header_bytes);
  // Room for the headers the proxy adds (X-Forwarded-*, framing) on top of the largest
  // head a client or upstream may send.
  return max + 4096;
}
}  // namespace

Worker::Worker(WorkerOptions options, std::shared_ptr<const Snapshot> snapshot,
               std::vector<WorkerListenSocket> sockets)
    : options_(options),
      snap_(std::move(snapshot)),
      sockets_(std::move(sockets)),
      access_log_(options.access_log_fd, options.access_log_json),
      blocks_(MaxBlockSize(*snap_)),
      // A merged X-Forwarded-For is bounded by the head, which fits in a large block.
      policy_scratch_(blocks_.large_size()),
      // Header change values and redirect Locations are bounded by the head as well; the
      // rewritten target gets twice that (prefix rewrite and regex rewrite steps).
      change_scratch_(blocks_.large_size()),
      rewrite_buf_(2 * static_cast<size_t>(blocks_.large_size())),
      resp_scratch_(blocks_.large_size()),
      local_scratch_(blocks_.large_size()),
      timers_(TimerLinkOf{&conns_}),
      clusters_(options.index, &stats_, &timers_, &conns_) {
  request_id_change_.set.push_back(routing::HeaderOp{"X-Request-Id", "${request_id}", true});
  snap_holds_.push_back(SnapshotHold{snap_, 0});
}

Worker::~Worker() {
  connect_.CloseInbox();  // before its eventfd closes
  if (wake_fd_ >= 0) close(wake_fd_);
}

bool Worker::Init(std::string* error) {
  if (options_.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(options_.cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
      ZLOG_WARN("worker %u: cannot pin to CPU %d; running unpinned", options_.index, options_.cpu);
    }
  }
  if (!ring_.Init(options_.ring, error)) return false;
  if (!bufs_.Init(ring_.raw(), 0, options_.buf_count, options_.buf_size, error)) return false;
  buf_refs_.assign(options_.buf_count, 0);

  SetupListenerTimers();
  clusters_.Init(snap_);
  applied_version_.store(snap_->version);
  applied_generation_.store(snap_->generation);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    *error = std::string("eventfd: ") + strerror(errno);
    return false;
  }
  connect_.Init(wake_fd_);
  t_linger_ = timers_.AddList(kLingerTimeoutMs);
  t_drain_idle_ = timers_.AddList(kDrainIdleMs);
  accept_armed_.assign(sockets_.size(), false);
  accept_ud_.assign(sockets_.size(), 0);
  for (const auto& sock : sockets_) {
    accept_plain_.push_back(snap_->listeners[sock.listener].tcp_cluster >= 0);
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    getsockname(sock.fd, reinterpret_cast<sockaddr*>(&ss), &len);
    socket_family_.push_back(ss.ss_family);
  }
  return true;
}

void Worker::UpdateNow() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  uint64_t ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + ts.tv_nsec;
  if (start_ns_ == 0) start_ns_ = ns;
  now_ms_ = static_cast<uint32_t>((ns - start_ns_) / 1000000ull) + 1;
}

void Worker::ArmTick() {
  tick_ts_.tv_sec = 0;
  tick_ts_.tv_nsec = kTickMs * 1000000ll;
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_timeout(sqe, &tick_ts_, 0, 0);
  io_uring_sqe_set_data64(sqe, io::UserData{io::Op::kTick, 0, 0, 0}.Pack());
}

bool Worker::RegularAccept(uint32_t socket_index) const {
  const ListenerRuntime& l = snap_->listeners[sockets_[socket_index].listener];
  // original_destination: getsockopt(SO_ORIGINAL_DST) has no io_uring command.
  return l.tls != nullptr || l.original_destination || accept_plain_[socket_index];
}

uint64_t Worker::AcceptUd(uint32_t socket_index) const {
  // What the armed accept was submitted with: a config change (TLS added to a listener)
  // may have changed RegularAccept since, and a cancel must name the op exactly.
  return accept_ud_[socket_index];
}

void Worker::ArmAccept(uint32_t socket_index) {
  io_uring_sqe* sqe = ring_.Sqe();
  // Direct descriptors: accepted sockets go straight into the registered file table,
  // so no fd table entry, and no fget/fput per operation. TLS listeners accept regular
  // descriptors instead: kTLS is installed with setsockopt, which needs one (the
  // io_uring setsockopt command is newer than the kernels that have kTLS here). So do
  // tcp_proxy listeners, nonblocking: sockmap and splice need real fds (see worker.h).
  // user_data's bid field tells OnAccept which kind the completion carries.
  const int fd = sockets_[socket_index].fd;
  bool regular = RegularAccept(socket_index);
  accept_ud_[socket_index] =
      io::UserData{io::Op::kAccept, socket_index, 0, regular ? uint16_t{1} : uint16_t{0}}.Pack();
  if (regular) {
    io_uring_prep_multishot_accept(
        sqe, fd, nullptr, nullptr,
        SOCK_CLOEXEC | (accept_plain_[socket_index] ? SOCK_NONBLOCK : 0));
  } else {
    io_uring_prep_multishot_accept_direct(sqe, fd, nullptr, nullptr, 0);
  }
  io_uring_sqe_set_data64(sqe, AcceptUd(socket_index));
  accept_armed_[socket_index] = true;
}

void Worker::Run() {
  UpdateNow();
  for (uint32_t i = 0; i < sockets_.size(); i++) ArmAccept(i);
  ArmTick();
  ArmWake();
  io_uring* ring = ring_.raw();
  while (running_) {
    int rc = io_uring_submit_and_wait(ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
      ZLOG_ERROR("worker %u: io_uring_submit_and_wait: %s", options_.index, strerror(-rc));
      break;
    }
    UpdateNow();
    unsigned head;
    unsigned count = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(ring, head, cqe) {
      Dispatch(cqe);
      count++;
    }
    io_uring_cq_advance(ring, count);
    h2_.FlushPending();  // HTTP/2 frames of this batch, one write per connection
    h2up_.FlushPending();
    h2_.FlushPending();  // what the upstream side woke (WINDOW_UPDATEs, data)
    bufs_.Commit();
    if (!enobufs_waiters_.empty() && recycled_ != 0) RearmEnobufsWaiters();
    recycled_ = 0;
  }
  tunnels_.ForgetSplicedPairs();
}

void Worker::Stop(uint32_t drain_timeout_ms) {
  drain_timeout_ms_.store(drain_timeout_ms);
  stop_requested_.store(true);
}

void Worker::Dispatch(io_uring_cqe* cqe) {
  io::UserData ud = io::UserData::Unpack(cqe->user_data);
  switch (ud.op) {
    case io::Op::kAccept:
      OnAccept(ud.slot, cqe);
      return;
    case io::Op::kTick:
      OnTick();
      return;
    case io::Op::kWake:
      OnWake();
      return;
    case io::Op::kSendZc:
      // The send's own buffer reference is dropped when the kernel no longer uses the
      // buffer: on the NOTIF completion, or at once when no NOTIF will follow (the
      // result completion came without F_MORE, e.g. the send failed or was cancelled).
      if (cqe->flags & IORING_CQE_F_NOTIF) {
        if (ud.bid != 0) BufUnref(static_cast<uint16_t>(ud.bid - 1));
        return;
      }
      if (!(cqe->flags & IORING_CQE_F_MORE) && ud.bid != 0) {
        BufUnref(static_cast<uint16_t>(ud.bid - 1));
      }
      break;
    default:
      break;
  }
  if (ud.op == io::Op::kCancel || ud.op == io::Op::kNone) return;
  Conn& c = conns_.Get(ud.slot);
  if (c.gen != ud.gen) {
    // A completion for a slot that has been reused. Only possible for ops we do not
    // count; still return any buffer the kernel picked.
    if (cqe->flags & IORING_CQE_F_BUFFER) {
      bufs_.OnConsumed();
      bufs_.Recycle(static_cast<uint16_t>(cqe->flags >> 16));
    }
    return;
  }
  switch (ud.op) {
    case io::Op::kRecv:
      OnRecv(ud.slot, cqe);
      break;
    case io::Op::kSend:
      OnSend(ud.slot, cqe->res, false);
      break;
    case io::Op::kSendZc:
      OnSend(ud.slot, cqe->res, true);
      break;
    case io::Op::kConnect:
      OnConnect(ud.slot, cqe->res);
      break;
    case io::Op::kPeerName:
      OnPeerName(ud.slot, cqe->res);
      break;
    case io::Op::kShutdown:
      OnShutdown(ud.slot);
      break;
    case io::Op::kClose:
      c.inflight--;
      MaybeFreeConn(ud.slot);
      break;
    case io::Op::kWatch:
      tunnels_.OnWatch(ud.slot, cqe->res);
      break;
    case io::Op::kSplicePoll:
      c.inflight--;  // the linked splice reports the outcome
      MaybeFreeConn(ud.slot);
      break;
    case io::Op::kSpliceIn:
      tunnels_.OnSpliceIn(ud.slot, cqe->res);
      break;
    case io::Op::kSpliceOut:
      tunnels_.OnSpliceOut(ud.slot, cqe->res);
      break;
    case io::Op::kFdInstall:
      tunnels_.OnFdInstall(ud.slot, cqe->res);
      break;
    case io::Op::kHelloPoll:
      tunnels_.OnHelloPoll(ud.slot, cqe->res);
      break;
    default:
      break;
  }
}

void Worker::OnTick() {
  ArmTick();
  if (!enobufs_waiters_.empty()) RearmEnobufsWaiters();
  clusters_.ExpireEjections(NowMs());
  if (deadlines_head_ != kNil) CheckDeadlines();
  access_log_.Flush();
  tunnels_.OnTick();
  h2up_.OnTick();
  if (stop_requested_.load(std::memory_order_relaxed) && !draining_) StartDrain();
  timers_.Expire(NowMs(), [this](uint32_t idx, uint16_t list) { OnTimeout(idx, list); });
  if (draining_) {
    // Until every multishot accept has really ended, the kernel may still hand this
    // worker connections; exiting then would strand them. Cancel again if needed.
    bool accepting = false;
    for (uint32_t i = 0; i < sockets_.size(); i++) {
      if (!accept_armed_[i]) continue;
      accepting = true;
      io_uring_sqe* sqe = ring_.Sqe();
      io_uring_prep_cancel64(sqe, AcceptUd(i), 0);  // same user_data as the accept
      io_uring_sqe_set_data64(sqe, io::UserData{io::Op::kCancel, 0, 0, 0}.Pack());
    }
    bool past_deadline = static_cast<int32_t>(NowMs() - drain_deadline_ms_) >= 0;
    if ((!accepting && stats_.client_open.Load() == 0) || past_deadline) {
      if (stats_.client_open.Load() != 0) {
        ZLOG_WARN("worker %u: drain deadline passed with %lu client connections open",
                  options_.index, static_cast<unsigned long>(stats_.client_open.Load()));
      }
      running_ = false;
    }
  }
}

void Worker::StartDrain() {
  draining_ = true;
  drain_deadline_ms_ = NowMs() + drain_timeout_ms_.load();
  // Stop accepting on this worker's sockets; zproxyd still holds them, so a restarted
  // data plane can take over without the kernel refusing connections.
  for (uint32_t i = 0; i < sockets_.size(); i++) {
    io_uring_sqe* sqe = ring_.Sqe();
    io_uring_prep_cancel64(sqe, AcceptUd(i), 0);  // same user_data as the accept
    io_uring_sqe_set_data64(sqe, io::UserData{io::Op::kCancel, 0, 0, 0}.Pack());
  }
  // Busy connections close after their current response (FinishExchange checks
  // draining_ and answers with Connection: close). Idle keep-alive connections get a
  // short grace period instead of an immediate close: a client under load sends its next
  // request right after a response, and closing under it would fail that request.
  for (uint32_t i = 0; i < conns_.capacity(); i++) {
    Conn& c = conns_.Get(i);
    if (c.fd < 0 || (c.flags & kClosing)) continue;
    if (c.kind == ConnKind::kClient && c.h2 != 0) {
      h2_.Drain(i);  // GOAWAY: open streams finish, new ones are refused
    } else if (c.kind == ConnKind::kClient && c.exchange == kNil && InBytes(i) == 0) {
      timers_.Arm(t_drain_idle_, i, NowMs());
    } else if (c.kind == ConnKind::kUpstream && (c.flags & kPooled)) {
      CloseConn(i);
    }
  }
}

void Worker::OnTimeout(uint32_t conn_idx, uint16_t list) {
  Conn& c = conns_.Get(conn_idx);
  if (c.flags & kClosing) return;
  if (c.kind == ConnKind::kClient) {
    if (c.flags & kLingering) {
      CloseConn(conn_idx);
      return;
    }
    if (tls_.OnHandshakeTimeout(conn_idx)) return;  // the handshake failed
    if (c.h2 != 0) {
      h2_.OnTimeout(conn_idx);
      return;
    }
    if (c.exchange != kNil) {
      const Exchange& ex = exchanges_.Get(c.exchange);
      if (ex.tunnel.hello) {
        tunnels_.OnHelloTimeout(conn_idx);  // no ClientHello in time
        return;
      }
      if (connect_.Resolving(ex)) {
        connect_.OnConnectResolveTimeout(c.exchange);  // the name did not resolve in time
        return;
      }
      if (ex.tunnel.pass_mode != static_cast<uint8_t>(PassMode::kCopy)) {
        tunnels_.OnPassthroughTimeout(conn_idx);
        return;
      }
      AbortExchange(c.exchange, true);  // tunnel idle for too long
      return;
    }
    if (c.exchange == kNil && InBytes(conn_idx) > 0) {
      // A partial request head did not complete in time.
      stats_.CountError(ErrorCause::kClientTimeout);
      SendLocalResponse(conn_idx, 408, "zproxy: request header timeout\n", true, {},
                        "header_timeout");
      return;
    }
    CloseConn(conn_idx);  // idle keep-alive timeout
    return;
  }
  // Upstream side.
  if (c.up_h2 != 0) {
    h2up_.OnTimeout(conn_idx);
    return;
  }
  if (c.flags & kPooled) {
    CloseConn(conn_idx);
    return;
  }
  if (c.exchange == kNil) {
    CloseConn(conn_idx);
    return;
  }
  uint32_t ex = c.exchange;
  if (tls_.OnHandshakeTimeout(conn_idx)) return;  // the handshake is the connect
  bool connecting = c.flags & kConnecting;
  // UpstreamFailed takes the stream's decision (stream::AfterUpstreamTimeout's rule).
  UpstreamFailed(ex, stream::TimeoutCause(connecting), connecting);
}

// --- Config snapshots: ConfigApplier posts them, the loop applies them between events.

void Worker::SetupListenerTimers() {
  t_client_idle_.clear();
  t_client_header_.clear();
  t_tls_handshake_.clear();
  t_connect_idle_.clear();
  t_client_hello_.clear();
  for (const auto& l : snap_->listeners) {
    t_client_hello_.push_back(
        timers_.ListFor(l.sni != nullptr ? l.sni->hello_timeout_ms : l.idle_timeout_ms));
    t_client_idle_.push_back(timers_.ListFor(l.idle_timeout_ms));
    t_client_header_.push_back(timers_.ListFor(l.header_timeout_ms));
    t_tls_handshake_.push_back(timers_.ListFor(l.handshake_timeout_ms));
    t_connect_idle_.push_back(
        timers_.ListFor(l.connect != nullptr ? l.connect->idle_timeout_ms : l.idle_timeout_ms));
  }
}

void Worker::ApplySnapshot(std::shared_ptr<const Snapshot> snap) {
  clusters_.Apply(snap, [this](uint32_t idle) { CloseConn(idle); });  // CloseConn unpools it
  snap_ = std::move(snap);
  current_hold_ = NewSnapshotHold(snap_);
  SetupListenerTimers();
  applied_version_.store(snap_->version);
  applied_generation_.store(snap_->generation);
}

void Worker::PostSnapshot(std::shared_ptr<const Snapshot> snapshot) {
  {
    std::lock_guard<std::mutex> lock(mailbox_mu_);
    mailbox_ = std::move(snapshot);
  }
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;  // an eventfd write only fails on counter overflow, which still wakes
}

void Worker::ArmWake() {
  io_uring_sqe* sqe = ring_.Sqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_buf_, sizeof(wake_buf_), 0);
  io_uring_sqe_set_data64(sqe, io::UserData{io::Op::kWake, 0, 0, 0}.Pack());
}

void Worker::OnWake() {
  ArmWake();
  std::shared_ptr<const Snapshot> snap;
  {
    std::lock_guard<std::mutex> lock(mailbox_mu_);
    snap = std::move(mailbox_);
  }
  if (snap != nullptr) ApplySnapshot(std::move(snap));
  connect_.OnDnsAnswers();  // the resolver wakes the loop through the same eventfd
}

}  // namespace zproxy::dataplane
