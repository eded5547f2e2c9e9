// The client half of the kTLS end-to-end run inside the ktls-vm (tests/ktls_vm/run.sh):
// real zproxyd + data plane with a TLS listener in front of zproxy-test-backend. Over TLS
// 1.3 and TLS 1.2 (AES-128-GCM, ChaCha20) connections it uploads 1 MiB to /echo-body (the
// same bytes come back) and downloads /bytes/1048576, verifying every byte; then it reads /metrics
// and requires zproxy_tls_offload_total{outcome="installed"} to count the connections: the data
// plane's workers must have handed each one to the kernel. Exit 0 = pass.
//
//   ktls_proxy_client --port 18443 --metrics-port 19901 [--expect-offload installed]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int Connect(uint16_t port) {
  for (int attempt = 0; attempt < 200; ++attempt) {  // the proxy may still be starting
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
      timeval tv{30, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      return fd;
    }
    ::close(fd);
    ::usleep(50000);
  }
  return -1;
}

// Byte stream over either TLS (ssl set) or plain TCP.
struct Stream {
  int fd = -1;
  SSL* ssl = nullptr;
  std::string buffered;

  bool Write(const void* data, size_t len) {
    const auto* p = static_cast<const char*>(data);
    while (len > 0) {
      const int n = ssl ? SSL_write(ssl, p, static_cast<int>(std::min<size_t>(len, 1 << 20)))
                        : static_cast<int>(::send(fd, p, len, MSG_NOSIGNAL));
      if (n <= 0) return false;
      p += n;
      len -= static_cast<size_t>(n);
    }
    return true;
  }
  bool Fill() {
    char buf[65536];
    const int n =
        ssl ? SSL_read(ssl, buf, sizeof(buf)) : static_cast<int>(::recv(fd, buf, sizeof(buf), 0));
    if (n <= 0) return false;
    buffered.append(buf, static_cast<size_t>(n));
    return true;
  }
};

// One HTTP/1.1 response with Content-Length; returns the status, fills *body.
int ReadResponse(Stream* s, std::string* body) {
  size_t end;
  while ((end = s->buffered.find("\r\n\r\n")) == std::string::npos) {
    if (!s->Fill()) return -1;
  }
  const std::string head = s->buffered.substr(0, end);
  s->buffered.erase(0, end + 4);
  int status = -1;
  std::sscanf(head.c_str(), "HTTP/1.%*d %d", &status);
  size_t length = 0;
  for (size_t pos = 0; (pos = head.find("\r\n", pos)) != std::string::npos;) {
    pos += 2;
    if (strncasecmp(head.c_str() + pos, "content-length:", 15) == 0) {
      length = std::strtoul(head.c_str() + pos + 15, nullptr, 10);
    }
  }
  while (s->buffered.size() < length) {
    if (!s->Fill()) return -1;
  }
  *body = s->buffered.substr(0, length);
  s->buffered.erase(0, length);
  return status;
}

bool Fail(const char* what) {
  std::printf("FAIL: %s\n", what);
  ERR_print_errors_fp(stdout);
  return false;
}

// A TLS connection to the proxy (the backend answers these paths with Connection: close,
// so every request gets its own connection).
struct TlsConnection {
  bssl::UniquePtr<SSL_CTX> ctx;
  bssl::UniquePtr<SSL> ssl;
  int fd = -1;
  ~TlsConnection() {
    if (ssl) SSL_shutdown(ssl.get());
    if (fd >= 0) ::close(fd);
  }
  bool Open(uint16_t port, uint16_t version, const char* tls12_cipher) {
    ctx.reset(SSL_CTX_new(TLS_method()));
    SSL_CTX_set_min_proto_version(ctx.get(), version);
    SSL_CTX_set_max_proto_version(ctx.get(), version);
    if (tls12_cipher != nullptr) SSL_CTX_set_strict_cipher_list(ctx.get(), tls12_cipher);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    fd = Connect(port);
    if (fd < 0) return Fail("cannot connect to the proxy");
    ssl.reset(SSL_new(ctx.get()));
    SSL_set_fd(ssl.get(), fd);
    SSL_set_tlsext_host_name(ssl.get(), "example.com");
    if (SSL_connect(ssl.get()) != 1) return Fail("TLS handshake with the proxy");
    return true;
  }
};

int g_connections = 0;

bool TlsExchange(uint16_t port, uint16_t version, const char* tls12_cipher) {
  std::string body;
  {
    // 1 MiB up, the same 1 MiB back (/echo-body streams the request body back).
    TlsConnection c;
    if (!c.Open(port, version, tls12_cipher)) return false;
    ++g_connections;
    std::printf("%s %s: ", SSL_get_version(c.ssl.get()),
                SSL_CIPHER_standard_name(SSL_get_current_cipher(c.ssl.get())));
    Stream s{c.fd, c.ssl.get(), {}};
    std::string upload(1 << 20, '\0');
    RAND_bytes(reinterpret_cast<uint8_t*>(upload.data()), upload.size());
    const std::string head = "POST /echo-body HTTP/1.1\r\nHost: example.com\r\nContent-Length: " +
                             std::to_string(upload.size()) + "\r\n\r\n";
    if (!s.Write(head.data(), head.size()) || !s.Write(upload.data(), upload.size())) {
      return Fail("upload");
    }
    if (ReadResponse(&s, &body) != 200 || body != upload) return Fail("echo-body response");
  }
  {
    // 1 MiB download with a known pattern.
    TlsConnection c;
    if (!c.Open(port, version, tls12_cipher)) return false;
    ++g_connections;
    Stream s{c.fd, c.ssl.get(), {}};
    const char get[] = "GET /bytes/1048576 HTTP/1.1\r\nHost: example.com\r\n\r\n";
    if (!s.Write(get, sizeof(get) - 1)) return Fail("download request");
    const int status = ReadResponse(&s, &body);
    if (status != 200 || body.size() != (1u << 20)) {
      std::printf("download: status %d, %zu bytes\n", status, body.size());
      return Fail("download");
    }
    for (size_t i = 0; i < body.size(); ++i) {
      if (static_cast<uint8_t>(body[i]) != ((i * 31 + 7) & 0xff)) return Fail("download bytes");
    }
  }
  std::printf("1 MiB echoed and 1 MiB downloaded, verified\n");
  return true;
}

// Sum of zproxy_tls_offload_total samples with outcome="<outcome>" (all workers).
long OffloadCount(uint16_t metrics_port, const std::string& outcome, std::string* lines) {
  const int fd = Connect(metrics_port);
  if (fd < 0) return -1;
  Stream s{fd, nullptr, {}};
  const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  std::string body;
  const int status = s.Write(req, sizeof(req) - 1) ? ReadResponse(&s, &body) : -1;
  ::close(fd);
  if (status != 200) return -1;
  // The data plane's own view of the kernel path: zproxy_dataplane_info{...,ktls="1"}.
  const size_t info = body.find("\nzproxy_dataplane_info{");
  if (info != std::string::npos) {
    *lines += "  " + body.substr(info + 1, body.find('\n', info + 1) - info - 1) + "\n";
  }
  long sum = 0;
  size_t pos = 0;
  while ((pos = body.find("zproxy_tls_offload_total{", pos)) != std::string::npos) {
    const size_t eol = body.find('\n', pos);
    const std::string line = body.substr(pos, eol - pos);
    *lines += "  " + line + "\n";
    if (line.find("outcome=\"" + outcome + "\"") != std::string::npos) {
      sum += std::strtol(line.c_str() + line.rfind(' ') + 1, nullptr, 10);
    }
    pos = eol;
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  uint16_t port = 18443, metrics_port = 19901;
  std::string expect = "installed";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port") == 0) port = static_cast<uint16_t>(std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--metrics-port") == 0) {
      metrics_port = static_cast<uint16_t>(std::atoi(argv[i + 1]));
    }
    if (std::strcmp(argv[i], "--expect-offload") == 0) expect = argv[i + 1];
  }
  setvbuf(stdout, nullptr, _IOLBF, 0);
  const bool ok = TlsExchange(port, TLS1_3_VERSION, nullptr) &&
                  TlsExchange(port, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256") &&
                  TlsExchange(port, TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305");
  if (!ok) return 1;
  std::string lines;
  const long n = OffloadCount(metrics_port, expect, &lines);
  std::printf("metrics:\n%s", lines.c_str());
  const bool info_ktls = lines.find("ktls=\"1\"") != std::string::npos;
  if (expect == "installed" && !info_ktls) {
    std::printf("FAIL: zproxy_dataplane_info does not say ktls=\"1\"\n");
    return 1;
  }
  if (n < g_connections) {
    std::printf("FAIL: %ld connection(s) with outcome=\"%s\", want %d\n", n, expect.c_str(),
                g_connections);
    return 1;
  }
  std::printf("PASS: %d TLS connections through zproxy, outcome=\"%s\" counted %ld\n",
              g_connections, expect.c_str(), n);
  return 0;
}
