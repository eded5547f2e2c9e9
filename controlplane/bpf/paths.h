// Path helpers shared by the BPF attach code (bpffs pins, cgroup directories).
#pragma once

#include <string>

namespace zproxy::controlplane::bpf {

// `p` with symlinks, "." and ".." resolved, or "" (errno says why) when it does not exist.
std::string RealPath(const std::string& p);

// Whether `path` is `dir` or inside it; both already resolved (RealPath).
bool PathUnder(const std::string& path, const std::string& dir);

}  // namespace zproxy::controlplane::bpf
