#include "dataplane/privileges/bpf_access.h"

#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace zproxy::dataplane::privileges {

bool BpfMapUsable(int map_fd, std::string* why) {
  alignas(8) uint8_t next_key[256];  // larger than any zproxy map key
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.map_fd = static_cast<uint32_t>(map_fd);
  attr.key = 0;  // NULL: the first key
  attr.next_key = reinterpret_cast<uint64_t>(next_key);
  if (syscall(SYS_bpf, BPF_MAP_GET_NEXT_KEY, &attr, sizeof(attr)) == 0 || errno != EPERM) {
    return true;
  }
  *why =
      "bpf() on the SOCKHASH is refused without CAP_BPF (kernel before 6.5 with "
      "kernel.unprivileged_bpf_disabled set)";
  return false;
}

}  // namespace zproxy::dataplane::privileges
