// One TLS connection in userspace, independent of any event loop: ciphertext comes in
// through SetInput() (a window onto bytes the caller received), plaintext leaves through
// Read(), plaintext goes in through Write() and ciphertext leaves through the caller's
// WireSink. No socket I/O happens here, so the worker keeps its io_uring paths and a test
// can drive a session over plain buffers.
//
// A custom BIO serves both directions: reading copies from the input window (BoringSSL
// keeps an incomplete record in its own buffer, so after a call that wants input the
// window is always used up and the caller may release its receive buffer at once);
// writing hands ciphertext straight to the sink, which must take all of it. BoringSSL
// frees its record buffers whenever they are empty (SSL_MODE_RELEASE_BUFFERS is
// implicit), and handshake-only configuration is shed after the handshake, so an idle
// established session holds only its keys and state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "dataplane/tls/handshake_failure.h"

struct ssl_st;
struct bio_st;
struct ssl_session_st;

namespace zproxy::tls {

class ServerContext;
class ClientContext;

// Why a handshake towards an upstream failed (the proxy answers 502 naming it).
enum class UpstreamTlsFailure : uint8_t {
  kExpired,    // the certificate is expired (or not yet valid)
  kUntrusted,  // it does not chain to the configured CA (self-signed, unknown issuer)
  kName,       // valid, but not for the configured server name / the endpoint's address
  kHandshake,  // anything else: no common version or cipher, alert, malformed
};

// Where encrypted bytes go. Append must take everything (copying it), or return false
// on a hard failure (out of memory), which fails the connection.
class WireSink {
 public:
  virtual bool Append(const char* data, size_t len) = 0;

 protected:
  ~WireSink() = default;
};

class Session {
 public:
  enum class Result : uint8_t {
    kOk,         // done (handshake complete / bytes produced / all written)
    kWantInput,  // needs more ciphertext
    kClosed,     // the peer sent close_notify
    kFailed,     // fatal: the connection must be closed (an alert may be in the sink)
  };

  Session() = default;
  ~Session() { Reset(); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Starts a server-side session. Returns false if BoringSSL could not allocate.
  bool Start(const ServerContext& context, WireSink* sink);
  // Starts a client-side session towards an upstream: SNI and the name (or, without one,
  // the IP address `ip`) the certificate is checked against. The first Handshake() call
  // writes the ClientHello.
  // `resume` (may be null) is a session from an earlier connection to the same endpoint.
  bool StartClient(const ClientContext& context, WireSink* sink, const char* ip,
                   ssl_session_st* resume = nullptr);
  // Client side: a session the server made resumable since the last call (a TLS 1.2
  // ticket in the handshake, a TLS 1.3 NewSessionTicket after it), with one reference for
  // the caller; null if none.
  ssl_session_st* TakeNewSession();
  // After a failed client handshake: why.
  UpstreamTlsFailure upstream_failure() const;
  // Frees the connection's TLS state (safe to call twice).
  void Reset();
  bool active() const { return ssl_ != nullptr; }

  // The received ciphertext the next calls consume.
  void SetInput(const char* data, size_t len) {
    in_ = data;
    in_len_ = len;
    if (first_byte_ < 0 && len > 0) first_byte_ = static_cast<uint8_t>(data[0]);
  }
  size_t input_left() const { return in_len_; }

  Result Handshake();
  bool established() const { return established_; }
  // Decrypts into out[0..cap): kOk with *n > 0, or kWantInput / kClosed / kFailed.
  Result Read(char* out, size_t cap, size_t* n);
  // Encrypts all of data into the sink.
  Result Write(const char* data, size_t len);
  // Queues a close_notify alert into the sink (once).
  void CloseNotify();

  // Why Handshake() failed.
  HandshakeFailure failure() const { return failure_; }
  // After the handshake: "TLSv1.3", "TLS_AES_128_GCM_SHA256", whether a ticket resumed it.
  const char* version() const;
  const char* cipher() const;
  // The name the client asked for (SNI), "" when none.
  const char* server_name() const;
  // The protocol ALPN selected ("http/1.1", "h2"; empty: none was negotiated). Points into
  // BoringSSL's state: valid until Reset().
  std::string_view alpn() const;
  bool resumed() const;
  // True when BoringSSL holds received bytes not yet returned by Read (a partial record
  // or unread plaintext): the kernel cannot take over receiving then.
  bool has_buffered_input() const;
  ssl_st* ssl() const { return ssl_; }

  // Called by the certificate selection callback when strict SNI refuses the name.
  static void MarkUnknownSni(ssl_st* ssl);
  // Called by the client context's new-session callback; takes the reference.
  static void OnNewClientSession(ssl_st* ssl, ssl_session_st* session);

 private:
  friend struct SessionBio;
  Result Classify(int ret, bool handshake);

  ssl_st* ssl_ = nullptr;
  WireSink* sink_ = nullptr;
  const char* in_ = nullptr;
  size_t in_len_ = 0;
  int16_t first_byte_ = -1;
  bool established_ = false;
  bool unknown_sni_ = false;
  bool close_notify_sent_ = false;
  ssl_session_st* new_session_ = nullptr;  // from the client's new-session callback
  HandshakeFailure failure_ = HandshakeFailure::kProtocol;
};

}  // namespace zproxy::tls
