// What an exchange that became a tunnel keeps: which mode carries its bytes, how far each
// direction got towards its end, and what the sockmap and splice modes hold in the kernel.
// One member of Exchange (Exchange::tunnel); only dataplane/tunnel/ writes it, except the
// flag that makes an exchange a tunnel and a CONNECT client's early FIN, which the HTTP
// side sets before the tunnel starts.
#pragma once

#include <cstdint>

#include "bpf/zproxy_structs.h"

namespace zproxy::dataplane {

// The flags are one bit each so that this state costs Exchange no more than the separate
// fields it replaces did (Exchange stays at 464 bytes): as ten bytes, with the mode byte,
// they would push the sockets' keys from offset 8 to 16.
struct TunnelState {
  // The exchange carries opaque bytes both ways: a tcp_proxy connection, WebSocket after
  // its 101, CONNECT after its 200. No HTTP any more on either connection.
  bool active : 1 = false;
  // Half-close, in every mode: a side's FIN seen (*_eof) and forwarded to the other side
  // as shutdown(SHUT_WR) (*_wr_shut) once everything before it was sent. client_eof is
  // also set by a CONNECT still connecting (its FIN goes through once the tunnel is up).
  // The tunnel's upstream_eof is its own: Exchange::upstream_eof ends close-delimited
  // HTTP responses, which never become tunnels.
  bool client_eof : 1 = false;
  bool upstream_eof : 1 = false;
  bool upstream_wr_shut : 1 = false;  // FIN forwarded to the upstream
  bool client_wr_shut : 1 = false;    // FIN forwarded to the client
  // Pass-through in sockmap or splice mode (dataplane/tunnel/passthrough.cc): the bytes
  // never enter the worker's buffers.
  uint8_t pass_mode = 0;     // PassMode (copy = 0: copy.cc)
  bool paired : 1 = false;   // sockmap: both sockets are in the SOCKHASH
  bool watched : 1 = false;  // on Tunnels' watch list (checked every tick)
  // sockmap: a pairing refused half-way after the kernel had already redirected bytes
  // (StartSockmap): no other mode can continue the stream intact, the caller resets it.
  bool pairing_moved_bytes : 1 = false;
  // WebSocket/CONNECT in sockmap or splice mode: userspace still holds bytes to forward
  // before the pairing (upgraded.cc); installing: FIXED_FD_INSTALL in flight.
  bool handover : 1 = false;
  bool installing : 1 = false;
  // tcp_proxy with sni_routes (sni_inspect.cc): no cluster chosen yet, the ClientHello is
  // being peeked at; hello_lowat: SO_RCVLOWAT was raised to wait for the rest of it.
  bool hello : 1 = false;
  bool hello_lowat : 1 = false;
  zproxy_sock_key client_key{}, upstream_key{};
  // sockmap: per-socket byte counts at pairing (TcpCounters), so "everything received on
  // one side has been written into the other" can be told from tcp_info later, and the
  // bytes both sockets had received at the last idle check.
  uint64_t client_rx_base = 0, upstream_rx_base = 0, client_tx_base = 0, upstream_tx_base = 0;
  uint64_t activity = 0;
  // splice: one pipe per direction; [0] client -> upstream, [1] upstream -> client.
  struct SpliceDir {
    int rd = -1, wr = -1;  // pipe ends
    uint32_t bytes = 0;    // in the pipe, not yet spliced out
    bool in_busy = false;  // poll + splice-in in flight
    bool out_busy = false;
  } dirs[2];
};

}  // namespace zproxy::dataplane
