// Tunnels: exchanges that carry opaque bytes both ways instead of HTTP. A tcp_proxy
// connection is one from its accept; an HTTP exchange becomes one after a 101 (WebSocket)
// or once a CONNECT target accepted (the worker sets Exchange::tunnel.active and calls
// StartUpgraded). The bytes move in one of three modes:
//   copy.cc         copy: through the worker's receive buffers and output queues
//   upgraded.cc     WebSocket/CONNECT: which mode, and the hand-over of what userspace
//                   read before the tunnel to sockmap/splice
//   passthrough.cc  what sockmap and splice share: the choice, fallbacks, timeouts, end
//   sni_inspect.cc  tcp_proxy with sni_routes: the ClientHello, peeked, picks the cluster
//   sockmap.cc      sockmap: the kernel's verdict program redirects; FINs by tcp_info
//   splice.cc       splice: socket -> pipe -> socket, per direction
//
// Owns: the per-exchange TunnelState (Exchange::tunnel), the list of sockmap tunnels with
// a FIN to watch each tick, and the warn-once flags of its log lines.
// Uses the worker's machinery (one Worker per CPU, this object is its member and a friend
// of it): connections, exchanges and their queues, the ring, stats, timers, and the
// worker's receive, send, shutdown and teardown steps (ArmRecv, Flush, ShutdownWrite,
// CloseConn, AbortExchange, ...). It never sees HTTP.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/proxy/passthrough_mode.h"

namespace zproxy::dataplane {

class Worker;
struct Exchange;

class Tunnels {
 public:
  explicit Tunnels(Worker& worker) : w_(worker) {}
  Tunnels(const Tunnels&) = delete;
  Tunnels& operator=(const Tunnels&) = delete;

  // --- copy.cc: the userspace copy (tcp_proxy in copy mode, WebSocket and CONNECT in
  // copy mode, and the hand-over of the others).
  // A tcp_proxy listener accepted conn_idx: the exchange, its mode, then (with sni_routes,
  // once the ClientHello chose the cluster) an upstream.
  void StartTcpProxy(uint32_t conn_idx);
  // Moves what `from` sent into its peer's output queue, as far as there is room.
  void Pump(uint32_t ex_idx, bool from_client);
  // Forwards each FIN whose bytes are all sent; closes both once both directions ended.
  void MaybeShutdown(uint32_t ex_idx);
  // End of a side's byte stream in copy mode (res == 0: FIN; < 0: error or reset).
  void OnClientEof(uint32_t ex_idx, int res);
  void OnUpstreamEof(uint32_t ex_idx, int res);

  // --- upgraded.cc: HTTP listener: the upstream answered an Upgrade request with 101
  // (WebSocket), or a CONNECT target accepted the connection: the exchange becomes a
  // tunnel in the listener's tunnel_mode. sockmap/splice first hand over what userspace
  // holds (stop reading, flush, direct descriptor -> regular fd), then StartPassthrough.
  void StartUpgraded(uint32_t ex_idx);
  void MaybeFinishHandover(uint32_t ex_idx);
  void OnFdInstall(uint32_t conn_idx, int res);
  // A paused receive has ended: a hand-over may have been waiting for it.
  void RecvStopped(uint32_t conn_idx);
  void CountFallback(TunnelFallback reason);

  // --- passthrough.cc: tunnels in sockmap or splice mode (no bytes in userspace). Start
  // picks the mode (falling back per connection: IPv6 or a full map -> splice, no pipe ->
  // copy).
  void StartPassthrough(uint32_t ex_idx);
  // The upstream connected and its cluster has tls: the bytes must pass through
  // BoringSSL, so a tcp_proxy tunnel headed for sockmap/splice copies instead.
  void OnTlsUpstream(uint32_t ex_idx);
  void ReleasePassthrough(Exchange& ex);  // before the sockets close: map entries, counts
  void OnPassthroughTimeout(uint32_t conn_idx);
  // Every tick: sockmap tunnels with a FIN seen.
  void OnTick() {
    if (!pass_watch_.empty()) CheckWatch();
  }
  void ForgetSplicedPairs();  // at exit: map entries of tunnels still open

  // --- sni_inspect.cc: the ClientHello of a tcp_proxy connection with sni_routes.
  void OnHelloPoll(uint32_t conn_idx, int res);
  void OnHelloTimeout(uint32_t conn_idx);

  // --- sockmap.cc / splice.cc: completions of their ops.
  void OnWatch(uint32_t conn_idx, int res);
  void OnSpliceIn(uint32_t conn_idx, int res);
  void OnSpliceOut(uint32_t conn_idx, int res);

 private:
  // --- copy.cc
  // The idle timer list of a tunnel's client (CONNECT tunnels have their own timeout).
  uint16_t IdleList(const Exchange& ex);
  // The tcp_proxy exchange's cluster is known: its mode's first step, then the upstream.
  void ConnectTcpProxy(uint32_t ex_idx);
  // --- sni_inspect.cc
  void StartHello(uint32_t ex_idx);
  // Peeks at what the client sent: routes, waits for more (eof: no more will come) or
  // refuses.
  void InspectHello(uint32_t ex_idx, bool eof);
  void RouteByHello(uint32_t ex_idx, int cluster_entry);
  void HelloFailed(uint32_t ex_idx, int reason);  // a HelloFailure
  // --- upgraded.cc
  PassMode UpgradedMode(uint32_t ex_idx);  // counts the fallback when it is copy
  // Why sockmap cannot take this tunnel now (a FIN went by: the SOCKHASH takes ESTABLISHED
  // sockets only; or bytes are queued behind ones userspace read); false = it can.
  bool SockmapRefusal(const Exchange& ex, TunnelFallback* why);
  // --- passthrough.cc: Finish ends a tunnel whose both directions are done, Abort one
  // that failed (reset = the survivor gets an RST, as if the peer's RST went through).
  PassMode TcpProxyMode(uint16_t listener);
  void FinishPassthrough(uint32_t ex_idx);
  void AbortPassthrough(uint32_t ex_idx, bool reset);
  void CheckWatch();
  // The completion of a pass-through op on conn_idx (splice in/out, watch): counts it, frees
  // a closing connection whose last op this was, and returns the tunnel's exchange, or kNil
  // when there is nothing left to act on.
  uint32_t PassthroughOpDone(uint32_t conn_idx);
  // --- sockmap.cc
  bool StartSockmap(uint32_t ex_idx);
  void ArmWatch(uint32_t conn_idx);
  // Forwards each FIN whose bytes the kernel has fully moved; true when both are done.
  bool ForwardSockmapFins(uint32_t ex_idx);
  // --- splice.cc
  bool StartSplice(uint32_t ex_idx);
  void SpliceFill(uint32_t ex_idx, int dir);
  void SpliceDrain(uint32_t ex_idx, int dir, bool poll_first);
  void MaybeEndSpliceDir(uint32_t ex_idx, int dir);

  Worker& w_;
  // Sockmap tunnels with a FIN seen (client conn index, generation): each tick forwards
  // FINs whose bytes the kernel has moved and notices a half-closed side that was reset.
  std::vector<std::pair<uint32_t, uint16_t>> pass_watch_;
  bool pass_warned_ = false;
  bool fd_install_warned_ = false;
  // Scratch for ResolvePassMode's reason, reused per tunnel so its buffer is allocated once.
  std::string mode_why_;
  // sni_inspect.cc: the peeked ClientHello and its reassembly scratch, allocated on the
  // first such connection (2 x tunnel::kMaxClientHelloBytes), then reused.
  std::unique_ptr<char[]> hello_buf_;
};

}  // namespace zproxy::dataplane
