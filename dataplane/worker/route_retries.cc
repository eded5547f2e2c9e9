// A route's timeout_ms and retry policy (docs/route-policy.md) in the worker. The rules
// (what is retried, when it is safe, the backoff) are the proxy stream's
// (stream::PolicyRetries); this file carries them out: deadlines, letting go of the
// upstream, the retry budget, the backoff wait.
//
// Deadlines (route timeout, per-try timeout, a retry's backoff) live on one per-worker
// list of exchanges that have any, checked on the worker's 50 ms tick: they are coarse
// (a 1 s timeout fires within 1.00-1.05 s), cost nothing for routes without them, and
// need no timer slot on connections shared by HTTP/2 streams.
#include <algorithm>

#include "dataplane/worker/worker.h"

namespace zproxy::dataplane {
namespace {

bool Idempotent(http::Method m) {
  switch (m) {
    case http::Method::kGet:
    case http::Method::kHead:
    case http::Method::kOptions:
    case http::Method::kTrace:
    case http::Method::kPut:
    case http::Method::kDelete:
      return true;
    default:
      return false;
  }
}

// A time after `now` that is never 0 (0 means "no deadline").
uint32_t After(uint32_t now, uint32_t ms) {
  uint32_t t = now + ms;
  return t == 0 ? 1 : t;
}

bool Passed(uint32_t deadline, uint32_t now) {
  return deadline != 0 && static_cast<int32_t>(now - deadline) >= 0;
}

}  // namespace

void Worker::LinkDeadline(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  if (ex.on_deadline_list) return;
  ex.on_deadline_list = true;
  ex.dl_prev = kNil;
  ex.dl_next = deadlines_head_;
  if (deadlines_head_ != kNil) exchanges_.Get(deadlines_head_).dl_prev = ex_idx;
  deadlines_head_ = ex_idx;
}

void Worker::UnlinkDeadline(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  if (!ex.on_deadline_list) return;
  if (ex.dl_prev != kNil) {
    exchanges_.Get(ex.dl_prev).dl_next = ex.dl_next;
  } else {
    deadlines_head_ = ex.dl_next;
  }
  if (ex.dl_next != kNil) exchanges_.Get(ex.dl_next).dl_prev = ex.dl_prev;
  ex.on_deadline_list = false;
  ex.dl_prev = ex.dl_next = kNil;
}

void Worker::StartRouteTimers(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  const routing::RoutePolicy* p = ex.route != nullptr ? ex.route->policy.get() : nullptr;
  if (p == nullptr || p->timeout_ms == 0) return;
  ex.route_deadline_ms = After(NowMs(), p->timeout_ms);
  LinkDeadline(ex_idx);
}

void Worker::StartTry(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  const routing::RoutePolicy* p = ex.route != nullptr ? ex.route->policy.get() : nullptr;
  ex.retry_at_ms = 0;
  if (p == nullptr || !p->has_retry || p->retry.per_try_timeout_ms == 0) return;
  ex.try_deadline_ms = After(NowMs(), p->retry.per_try_timeout_ms);
  LinkDeadline(ex_idx);
}

void Worker::EndRouteTimers(uint32_t ex_idx) {
  Exchange& ex = exchanges_.Get(ex_idx);
  ex.route_deadline_ms = ex.try_deadline_ms = ex.retry_at_ms = 0;
  UnlinkDeadline(ex_idx);
}

bool Worker::TryPolicyRetry(uint32_t ex_idx, stream::RetryTrigger trigger, uint16_t status) {
  Exchange& ex = exchanges_.Get(ex_idx);
  const routing::RoutePolicy* p = ex.route != nullptr ? ex.route->policy.get() : nullptr;
  if (p == nullptr || !p->has_retry || ex.connect || ex.tunnel.active) return false;
  ClusterState& cs = Cs(ex.cluster);
  const ClusterRuntime& cluster = *cs.cfg;
  stream::RetryPolicyView policy;
  policy.conditions = p->retry.on.bits;
  policy.status_retriable =
      trigger == stream::RetryTrigger::kStatus && p->retry.on.RetriesStatus(status);
  policy.num_retries = p->retry.num_retries;
  policy.retries_done = ex.policy_retries;
  policy.non_idempotent_allowed = p->retry.non_idempotent;
  stream::RetryRequestView req;
  req.idempotent = Idempotent(ex.method);
  req.has_body =
      ex.h2_stream != 0 ? ex.h2_req_body : ex.down.request_body().framing() != http::Framing::kNone;
  // Retry budget: retries in flight at most a share of the cluster's active requests
  // (refs: this worker's exchanges on the cluster), with a floor for quiet clusters.
  const uint32_t budget = std::max<uint32_t>(
      cluster.min_retry_concurrency,
      static_cast<uint32_t>(uint64_t{cs.refs} * cluster.retry_budget_percent / 100));
  req.budget_available = ex.counts_as_retry || cs.retries < budget;
  if (!stream::PolicyRetries(Progress(ex), policy, req, trigger)) {
    if (!req.budget_available) {
      req.budget_available = true;  // would it have been retried with room in the budget?
      if (stream::PolicyRetries(Progress(ex), policy, req, trigger)) {
        stats_.retry_budget_exhausted.Add();
      }
    }
    return false;
  }
  // Let go of this try: its upstream (closed: its state is unknown), its endpoint.
  if (ex.upstream != kNil) CloseUpstreamOf(ex_idx);
  if (ex.lb_counted) {
    cs.lb->OnConnectionClosed(ex.endpoint);
    ex.lb_counted = false;
  }
  ex.failed_endpoint = ex.endpoint;
  ex.head_queued = false;
  ex.resp = RespState::kWaitHead;
  ex.interims = 0;
  ex.status = 0;
  ex.up.Begin(ex.method, false);
  ex.policy_retries++;
  if (!ex.counts_as_retry) {
    ex.counts_as_retry = true;
    cs.retries++;
  }
  stats_.upstream_retries.Add();
  stats_.route_retries[static_cast<int>(trigger)].Add();
  ex.try_deadline_ms = 0;
  uint32_t wait = stream::RetryBackoffMs(p->retry.base_interval_ms, p->retry.max_interval_ms,
                                         ex.policy_retries - 1, request_ids_.NextRandom());
  if (wait == 0) {
    StartTry(ex_idx);
    if (!AssignUpstream(ex_idx)) RespondUpstreamError(ex_idx, NoUpstreamCause(ex_idx));
    return true;
  }
  ex.retry_at_ms = After(NowMs(), wait);
  LinkDeadline(ex_idx);
  return true;
}

bool Worker::RetryOnStatus(uint32_t ex_idx, uint16_t status) {
  const Exchange& ex = exchanges_.Get(ex_idx);
  if (ex.route == nullptr || ex.route->policy == nullptr || !ex.route->policy->has_retry) {
    return false;
  }
  if (!ex.route->policy->retry.on.RetriesStatus(status)) return false;
  return TryPolicyRetry(ex_idx, stream::RetryTrigger::kStatus, status);
}

void Worker::CheckDeadlines() {
  const uint32_t now = NowMs();
  uint32_t next;
  for (uint32_t ex_idx = deadlines_head_; ex_idx != kNil; ex_idx = next) {
    Exchange& ex = exchanges_.Get(ex_idx);
    next = ex.dl_next;
    if (ex.resp_started) {  // the head went out: nothing left to time
      EndRouteTimers(ex_idx);
      continue;
    }
    if (Passed(ex.route_deadline_ms, now)) {
      EndRouteTimers(ex_idx);
      if (ex.endpoint != kNil && ex.upstream != kNil) {
        RecordUpstreamResult(ex.cluster, ex.endpoint, false);
      }
      CloseUpstreamOf(ex_idx);
      RespondUpstreamError(ex_idx, ErrorCause::kRouteTimeout);
      continue;
    }
    if (Passed(ex.retry_at_ms, now)) {
      ex.retry_at_ms = 0;
      if (ex.route_deadline_ms == 0) UnlinkDeadline(ex_idx);
      StartTry(ex_idx);
      if (!AssignUpstream(ex_idx)) RespondUpstreamError(ex_idx, NoUpstreamCause(ex_idx));
      continue;
    }
    if (Passed(ex.try_deadline_ms, now) && ex.upstream != kNil) {
      ex.try_deadline_ms = 0;
      // UpstreamFailed asks the policy (a per-try timeout trigger), else answers 504.
      UpstreamFailed(ex_idx, ErrorCause::kPerTryTimeout, false);
      continue;
    }
  }
}

}  // namespace zproxy::dataplane
