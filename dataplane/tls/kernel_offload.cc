#include "dataplane/tls/kernel_offload.h"

#include <sys/socket.h>

#include "dataplane/ktls/ktls.h"
#include "dataplane/ktls/records.h"

namespace zproxy::tls {

namespace {
// Written once by main before the workers start, read-only afterwards.
bool g_force_attempts = false;
}  // namespace

void ForceKernelOffloadAttempts(bool force) { g_force_attempts = force; }

bool KernelOffloadAvailable() {
  return ktls::Detect() == ktls::Support::kPresent || g_force_attempts;
}

OffloadOutcome TryKernelOffload(int fd, SSL* ssl) {
  // The first values of OffloadOutcome mirror ktls::Outcome one to one.
  static_assert(ktls::kOutcomeCount == static_cast<size_t>(OffloadOutcome::kFixedFile));
  static_assert(static_cast<int>(ktls::Outcome::kInstalled) ==
                static_cast<int>(OffloadOutcome::kInstalled));
  static_assert(static_cast<int>(ktls::Outcome::kPendingData) ==
                static_cast<int>(OffloadOutcome::kPendingData));
  static_assert(static_cast<int>(ktls::Outcome::kBroken) ==
                static_cast<int>(OffloadOutcome::kBroken));
  return static_cast<OffloadOutcome>(ktls::TryInstall(fd, ssl).outcome);
}

ControlRecord ReadControlRecord(int fd, char* buf, size_t cap, size_t* n) {
  *n = 0;
  ktls::RxResult r = ktls::RecvRecord(fd, buf, cap, MSG_DONTWAIT);
  switch (r.kind) {
    case ktls::RxKind::kData:
      *n = r.bytes;
      return ControlRecord::kData;
    case ktls::RxKind::kNewSessionTicket:
    case ktls::RxKind::kWouldBlock:
      return ControlRecord::kContinue;
    case ktls::RxKind::kCloseNotify:
    case ktls::RxKind::kEof:
      return ControlRecord::kCloseNotify;
    default:
      return ControlRecord::kClose;
  }
}

}  // namespace zproxy::tls
