// Whether bpf() still works on a map fd zproxyd handed over, after the privilege drop.
// Kernels before 6.5 with kernel.unprivileged_bpf_disabled set refuse EVERY bpf() command
// to a process without CAP_BPF/CAP_SYS_ADMIN, even on an fd it holds; 6.5 and later check
// only map/program creation. The data plane needs it for SOCKHASH updates (pass-through
// in sockmap mode), so it probes once and falls back (splice/copy) with one log line.
#pragma once

#include <string>

namespace zproxy::dataplane::privileges {

// BPF_MAP_GET_NEXT_KEY on `map_fd`: true if the kernel let us in (any answer but EPERM).
bool BpfMapUsable(int map_fd, std::string* why);

}  // namespace zproxy::dataplane::privileges
