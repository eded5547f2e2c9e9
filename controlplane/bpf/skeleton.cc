#include "controlplane/bpf/skeleton.h"

#include <cstdarg>
#include <cstdio>
#include <mutex>

#include "common/log.h"

namespace zproxy::controlplane::bpf {
namespace {

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[512];
  int n = std::vsnprintf(line, sizeof(line), fmt, args);
  if (n > 0 && line[std::min<size_t>(n, sizeof(line) - 1) - 1] == '\n') {
    line[std::min<size_t>(n, sizeof(line) - 1) - 1] = '\0';
  }
  ZLOG_DEBUG("libbpf: %s", line);
  return 0;
}

}  // namespace

void QuietLibbpf() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(LibbpfPrint); });
}

}  // namespace zproxy::controlplane::bpf
