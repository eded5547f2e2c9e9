// Detect(): is the kernel's TLS ULP available? Asked once per process, logged once.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/log.h"
#include "dataplane/ktls/ktls.h"

namespace zproxy::ktls {
namespace {

Support Probe() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ZLOG_WARN("kTLS: not used: probe socket failed: %s; TLS stays in userspace", strerror(errno));
    return Support::kAbsent;
  }
  // On an unconnected socket the kernel resolves the ULP name first (ENOENT if it has no
  // "tls" ULP and cannot load tls.ko), then refuses to attach it (ENOTCONN): so ENOTCONN
  // proves support without a connection.
  const int rc = ::setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls"));
  const int err = rc < 0 ? errno : 0;
  ::close(fd);
  if (err == ENOTCONN || rc == 0) {
    ZLOG_INFO(
        "kTLS: available (TCP_ULP \"tls\" probe: ENOTCONN); TLS 1.2/1.3 AES-GCM and "
        "ChaCha20-Poly1305 connections move their records into the kernel");
    return Support::kPresent;
  }
  if (err == ENOENT) {
    ZLOG_INFO(
        "kTLS: not available (TCP_ULP \"tls\" probe: ENOENT: kernel without CONFIG_TLS, "
        "or tls.ko not loaded: `modprobe tls`); TLS stays in userspace (BoringSSL)");
  } else {
    ZLOG_WARN("kTLS: not used (TCP_ULP \"tls\" probe: %s); TLS stays in userspace (BoringSSL)",
              strerror(err));
  }
  return Support::kAbsent;
}

}  // namespace

Support Detect() {
  // Magic static: probed and logged once, thread-safe; immutable afterwards.
  static const Support kSupport = Probe();
  return kSupport;
}

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kInstalled:
      return "installed";
    case Outcome::kNoKernelSupport:
      return "no_kernel_support";
    case Outcome::kUnsupportedVersion:
      return "unsupported_version";
    case Outcome::kUnsupportedCipher:
      return "unsupported_cipher";
    case Outcome::kPendingData:
      return "pending_data";
    case Outcome::kKernelRefused:
      return "kernel_refused";
    case Outcome::kBroken:
      return "broken";
  }
  return "unknown";
}

}  // namespace zproxy::ktls
