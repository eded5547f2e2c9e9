#include "dataplane/ktls/testing/tls_peers.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "dataplane/ktls/records.h"

namespace zproxy::ktls::testing {

void SetTimeouts(int fd) {
  timeval tv{30, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

UniqueFd LoopbackListener(uint16_t* port) {
  UniqueFd l(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t al = sizeof(a);
  if (!l.valid() || ::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(l.get(), 8) != 0 ||
      ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &al) != 0) {
    return UniqueFd();
  }
  *port = ntohs(a.sin_port);
  return l;
}

TcpPair LoopbackPair() {
  TcpPair p;
  uint16_t port = 0;
  UniqueFd l = LoopbackListener(&port);
  if (!l.valid()) return p;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  p.client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(p.client.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    p.client.reset();
    return p;
  }
  p.server.reset(::accept4(l.get(), nullptr, nullptr, SOCK_CLOEXEC));
  SetTimeouts(p.client.get());
  SetTimeouts(p.server.get());
  return p;
}

namespace {

bool MakeSelfSignedEcdsa(bssl::UniquePtr<EVP_PKEY>* key_out, bssl::UniquePtr<X509>* cert_out) {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!ec || !EC_KEY_generate_key(ec.get()) || !key ||
      !EVP_PKEY_assign_EC_KEY(key.get(), ec.release())) {
    return false;
  }
  bssl::UniquePtr<X509> cert(X509_new());
  bssl::UniquePtr<ASN1_TIME> not_before(ASN1_TIME_set(nullptr, time(nullptr) - 3600));
  bssl::UniquePtr<ASN1_TIME> not_after(ASN1_TIME_set(nullptr, time(nullptr) + 86400));
  X509_NAME* name = X509_get_subject_name(cert.get());
  const bool ok =
      cert && X509_set_version(cert.get(), X509_VERSION_3) &&
      ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1) && not_before && not_after &&
      X509_set1_notBefore(cert.get(), not_before.get()) &&
      X509_set1_notAfter(cert.get(), not_after.get()) &&
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const uint8_t*>("ktls.test"), -1, -1, 0) &&
      X509_set_issuer_name(cert.get(), name) && X509_set_pubkey(cert.get(), key.get()) &&
      X509_sign(cert.get(), key.get(), EVP_sha256());
  if (!ok) return false;
  *key_out = std::move(key);
  *cert_out = std::move(cert);
  return true;
}

bool ApplyParams(SSL_CTX* ctx, const TlsParams& params) {
  return SSL_CTX_set_min_proto_version(ctx, params.min_version) &&
         SSL_CTX_set_max_proto_version(ctx, params.max_version) &&
         (params.tls12_ciphers == nullptr ||
          SSL_CTX_set_strict_cipher_list(ctx, params.tls12_ciphers));
}

}  // namespace

bssl::UniquePtr<SSL_CTX> NewServerContext(const TlsParams& params) {
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  bssl::UniquePtr<EVP_PKEY> key;
  bssl::UniquePtr<X509> cert;
  if (!ctx || !ApplyParams(ctx.get(), params) || !MakeSelfSignedEcdsa(&key, &cert) ||
      !SSL_CTX_use_certificate(ctx.get(), cert.get()) ||
      !SSL_CTX_use_PrivateKey(ctx.get(), key.get())) {
    return nullptr;
  }
  return ctx;
}

bssl::UniquePtr<SSL_CTX> NewClientContext(const TlsParams& params) {
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  if (!ctx || !ApplyParams(ctx.get(), params)) return nullptr;
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  return ctx;
}

std::vector<uint8_t> RandomBytes(size_t n) {
  std::vector<uint8_t> v(n);
  RAND_bytes(v.data(), v.size());
  return v;
}

std::string SslErrors() {
  std::string out;
  while (uint32_t e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "(no BoringSSL error)" : out;
}

namespace {

bssl::UniquePtr<SSL> Handshake(SSL_CTX* ctx, int fd, bool server, std::string* error) {
  bssl::UniquePtr<SSL> ssl(SSL_new(ctx));
  if (!ssl || !SSL_set_fd(ssl.get(), fd)) {
    *error = "SSL_new/SSL_set_fd: " + SslErrors();
    return nullptr;
  }
  const int rc = server ? SSL_accept(ssl.get()) : SSL_connect(ssl.get());
  if (rc != 1) {
    *error = std::string(server ? "SSL_accept" : "SSL_connect") + " failed: error " +
             std::to_string(SSL_get_error(ssl.get(), rc)) + ": " + SslErrors();
    return nullptr;
  }
  return ssl;
}

}  // namespace

bssl::UniquePtr<SSL> Accept(SSL_CTX* ctx, int fd, std::string* error) {
  return Handshake(ctx, fd, true, error);
}
bssl::UniquePtr<SSL> Connect(SSL_CTX* ctx, int fd, std::string* error) {
  return Handshake(ctx, fd, false, error);
}

bool Endpoint::WriteAll(const uint8_t* data, size_t len, std::string* error) {
  size_t off = 0;
  while (off < len) {
    const size_t chunk = std::min<size_t>(len - off, 1 << 20);
    if (ktls) {
      const ssize_t n = ::send(fd, data + off, chunk, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        *error = "send on kTLS socket: " + std::string(strerror(errno));
        return false;
      }
      off += static_cast<size_t>(n);
    } else {
      const int n = SSL_write(ssl, data + off, static_cast<int>(chunk));
      if (n <= 0) {
        *error = "SSL_write: " + SslErrors();
        return false;
      }
      off += static_cast<size_t>(n);
    }
  }
  return true;
}

bool Endpoint::ReadExact(uint8_t* data, size_t len, std::string* error) {
  size_t off = 0;
  std::vector<uint8_t> control;
  while (off < len) {
    if (!ktls) {
      const int n =
          SSL_read(ssl, data + off, static_cast<int>(std::min<size_t>(len - off, 1 << 20)));
      if (n <= 0) {
        *error = "SSL_read after " + std::to_string(off) + " bytes: error " +
                 std::to_string(SSL_get_error(ssl, n)) + ": " + SslErrors();
        return false;
      }
      off += static_cast<size_t>(n);
      continue;
    }
    // The data plane's path: plain recv, and RecvRecord when the kernel says EIO (a record
    // that is not application data is next).
    const ssize_t n = ::recv(fd, data + off, len - off, 0);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      *error = "EOF after " + std::to_string(off) + " bytes";
      return false;
    }
    if (errno != EIO) {
      *error = "recv on kTLS socket after " + std::to_string(off) + " bytes: " + strerror(errno);
      return false;
    }
    control.resize(kMaxRecordPayload);
    const RxResult r = RecvRecord(fd, control.data(), control.size(), 0);
    if (r.kind == RxKind::kNewSessionTicket) {
      ++tickets_seen;
      continue;
    }
    if (r.kind == RxKind::kData && r.bytes <= len - off) {  // EIO then data: keep it
      std::memcpy(data + off, control.data(), r.bytes);
      off += r.bytes;
      continue;
    }
    *error = "unexpected record on kTLS socket after " + std::to_string(off) + " bytes: kind " +
             std::to_string(static_cast<int>(r.kind)) + " errno " + std::to_string(r.error);
    return false;
  }
  return true;
}

bool Endpoint::CloseNotify(std::string* error) {
  if (ktls) {
    const int err = SendCloseNotify(fd);
    if (err != 0) *error = "SendCloseNotify: " + std::string(strerror(err));
    return err == 0;
  }
  if (SSL_shutdown(ssl) < 0) {
    *error = "SSL_shutdown: " + SslErrors();
    return false;
  }
  return true;
}

bool Endpoint::FatalAlert(uint8_t description, std::string* error) {
  if (ktls) {
    const int err = SendAlert(fd, kAlertFatal, description);
    if (err != 0) *error = "SendAlert: " + std::string(strerror(err));
    return err == 0;
  }
  if (SSL_send_fatal_alert(ssl, description) < 0) {
    *error = "SSL_send_fatal_alert: " + SslErrors();
    return false;
  }
  return true;
}

bool PeekWire(int fd, uint8_t* out, size_t len) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = ::recv(fd, out, len, MSG_PEEK | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(len)) return true;
    if (n == 0) return false;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 10);
    if (n > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

}  // namespace zproxy::ktls::testing
