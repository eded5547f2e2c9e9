// HTTP CONNECT on HTTP listeners (forward proxy to an allowlist, Listener.connect): the
// request up to the 200 that turns it into a tunnel (dataplane/tunnel takes over there).
//   request.cc  the allowlist, the target's exchange, refusals and failures, the 200
//   by_name.cc  targets by host name: the resolver (thread and cache), the addresses
//               tried in order within the connect timeout
//
// Owns: the CONNECT-by-name targets in flight (their names and addresses), and this
// worker's inbox for the resolver's answers.
// Uses the worker's machinery (one Worker per CPU, this object is its member and a friend
// of it): exchanges, connections, stats, timers, its connect and local-answer steps
// (ConnectTo, SendLocalResponse, AbortExchange, ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "common/connect_allow.h"
#include "dataplane/codec/http1/server_stream.h"
#include "dataplane/dns/resolver.h"
#include "dataplane/metrics/worker_stats.h"
#include "dataplane/worker/conn.h"
#include "dataplane/worker/slab.h"

namespace zproxy::dataplane {

class Worker;

class ConnectRequests {
 public:
  explicit ConnectRequests(Worker& worker) : w_(worker) {}
  ConnectRequests(const ConnectRequests&) = delete;
  ConnectRequests& operator=(const ConnectRequests&) = delete;

  // The resolver posts answers to an inbox that wakes the loop through `wake_fd`.
  void Init(int wake_fd) { dns_inbox_ = std::make_shared<dns::Inbox>(wake_fd); }
  // Before the wake eventfd closes: late answers are dropped.
  void CloseInbox() {
    if (dns_inbox_ != nullptr) dns_inbox_->Close();
  }

  // --- request.cc
  // A CONNECT request head (never routed to a cluster: it opens a tunnel to its target).
  void StartConnectRequest(uint32_t conn_idx, const codec::http1::RequestHeadEvent& req,
                           std::string_view request_line);
  // HTTP/2 (RFC 9113 §8.5): a CONNECT stream, already an exchange of its session, to
  // `target` (its :authority). false: refused; *status, *body and *note say how to answer.
  bool StartH2Connect(uint32_t ex_idx, std::string_view target, int* status, std::string_view* body,
                      std::string_view* note);
  // The target accepted: 200, then the exchange is a tunnel.
  void EstablishConnectTunnel(uint32_t ex_idx);
  void CountConnectFailure(ErrorCause cause);

  // --- by_name.cc
  // The loop was woken: answers the resolver posted.
  void OnDnsAnswers();
  // After a failed attempt: true if another address is being tried.
  bool ConnectTryNext(uint32_t ex_idx, ErrorCause cause);
  // The exchange's client timer fired while its name was still being resolved.
  bool Resolving(const Exchange& ex) const {
    return ex.target != kNil && connect_targets_.Get(ex.target).resolving;
  }
  void OnConnectResolveTimeout(uint32_t ex_idx);
  // The 502/504 body for a name target ("... localhost:8443 ... (connection refused)").
  std::string_view ConnectNameErrorBody(const Exchange& ex, ErrorCause cause, char* buf,
                                        size_t cap);
  void FreeConnectTarget(Exchange& ex);

 private:
  void RefuseConnect(uint32_t conn_idx, ConnectOutcome outcome, int status, std::string_view body,
                     bool close, std::string_view request_line);
  // The exchange a CONNECT becomes once allowed (or allowed pending its name's addresses).
  uint32_t NewConnectExchange(uint32_t conn_idx, const codec::http1::RequestHeadEvent& req,
                              std::string_view request_line);
  // Ends a CONNECT exchange that never reached its target with zproxy's own answer.
  void FailConnect(uint32_t ex_idx, ConnectOutcome outcome, int status, std::string_view body,
                   std::string_view note);
  void StartConnectByName(uint32_t conn_idx, const codec::http1::RequestHeadEvent& req,
                          std::string_view request_line, const ConnectName& name);
  // Resolves the name of an exchange's CONNECT target, then connects to its addresses.
  void ResolveAndConnect(uint32_t ex_idx, const ConnectName& name);
  // An exchange becomes a CONNECT: the listener's connect state is its cluster.
  void MakeConnectExchange(uint32_t ex_idx);
  void ConnectResolved(uint32_t ex_idx);
  void ConnectNextAddress(uint32_t ex_idx);

  Worker& w_;
  Slab<ConnectTarget, 64> connect_targets_;
  // Resolver answers come through this inbox (the worker's wake eventfd wakes the loop);
  // taken into dns_answers_, which keeps its capacity.
  std::shared_ptr<dns::Inbox> dns_inbox_;
  std::vector<dns::Answer> dns_answers_;
  uint32_t dns_seq_ = 0;
  bool dns_full_warned_ = false;
};

}  // namespace zproxy::dataplane
