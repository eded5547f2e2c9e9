// Test and benchmark support for kTLS: loopback TCP pairs, a throwaway ECDSA P-256
// certificate, BoringSSL contexts, and an Endpoint that moves bytes either through the
// kernel (kTLS installed: plain send/recv) or through BoringSSL (userspace fallback).
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace zproxy::ktls::testing {

struct TcpPair {
  UniqueFd client;
  UniqueFd server;
};

// Connected 127.0.0.1 pair, blocking, TCP_NODELAY, 30 s send/receive timeouts so a broken
// kernel path fails the test instead of hanging it.
TcpPair LoopbackPair();

// A listening 127.0.0.1 socket on an ephemeral port (for external clients).
UniqueFd LoopbackListener(uint16_t* port);
void SetTimeouts(int fd);

// TLS versions and (TLS 1.2) cipher list; TLS 1.3 suites are chosen by BoringSSL itself.
struct TlsParams {
  uint16_t min_version = TLS1_2_VERSION;
  uint16_t max_version = TLS1_3_VERSION;
  const char* tls12_ciphers = nullptr;  // null: BoringSSL's default list
};

// Server context with a fresh self-signed ECDSA P-256 certificate; session tickets on
// (BoringSSL's default, as in the data plane).
bssl::UniquePtr<SSL_CTX> NewServerContext(const TlsParams& params);
// Client context: no certificate verification (the peer's cert is throwaway).
bssl::UniquePtr<SSL_CTX> NewClientContext(const TlsParams& params);

std::vector<uint8_t> RandomBytes(size_t n);
std::string SslErrors();  // drains BoringSSL's error queue into one line

// One side of a connection after the handshake. With `ktls` set the SSL object is left
// alone and bytes go through send/recv; otherwise through SSL_write/SSL_read.
struct Endpoint {
  int fd = -1;
  SSL* ssl = nullptr;
  bool ktls = false;

  // Counters of what RecvRecord saw on the kTLS path.
  int tickets_seen = 0;

  bool WriteAll(const uint8_t* data, size_t len, std::string* error);
  // Reads exactly `len` bytes of application data; kTLS control records are classified:
  // NewSessionTicket is skipped, anything else ends the read with an error message.
  bool ReadExact(uint8_t* data, size_t len, std::string* error);
  // Sends close_notify (control record under kTLS, SSL_shutdown otherwise).
  bool CloseNotify(std::string* error);
  // Sends a fatal alert (control record under kTLS, SSL_send_fatal_alert otherwise).
  bool FatalAlert(uint8_t description, std::string* error);
};

// Runs blocking SSL_accept / SSL_connect on `fd`. Returns null with *error on failure.
bssl::UniquePtr<SSL> Accept(SSL_CTX* ctx, int fd, std::string* error);
bssl::UniquePtr<SSL> Connect(SSL_CTX* ctx, int fd, std::string* error);

// Peeks at the first bytes waiting on `fd` without consuming them (waits up to 10 s for
// `len` bytes). Used to look at the wire under a userspace TLS client.
bool PeekWire(int fd, uint8_t* out, size_t len);

}  // namespace zproxy::ktls::testing
