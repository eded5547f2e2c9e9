// bpffs: where zproxyd pins its maps and programs. Pins only exist on a bpf filesystem, so
// the directory's filesystem is mounted when it is missing (a fresh boot or a container
// without /sys/fs/bpf).
#pragma once

#include <string>

namespace zproxy::controlplane::bpf {

// True if `path` (which must exist) is on a bpf filesystem.
bool IsOnBpffs(const std::string& path);

// Makes `dir` an existing directory on bpffs: mounts bpffs at /sys/fs/bpf when `dir` is
// under it (else at `dir` itself) if no bpffs is mounted there, then creates `dir` (mode
// 0700: pins are as privileged as the maps). False with a reason on any failure.
bool EnsureBpffsDir(const std::string& dir, std::string* error);

}  // namespace zproxy::controlplane::bpf
