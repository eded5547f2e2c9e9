#include "dataplane/tls/kernel_offload.h"

namespace zproxy::tls {

// Placeholder until dataplane/ktls lands: report "unsupported" so every connection stays
// in userspace TLS (counted as mode="userspace").
bool KernelOffloadAvailable() { return false; }

OffloadResult TryKernelOffload(int, ssl_st*) { return OffloadResult::kUnsupported; }

}  // namespace zproxy::tls
