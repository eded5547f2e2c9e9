// Finding the zproxy-dataplane binary: beside zproxyd when installed, or in Bazel's
// output tree (bazel-bin/controlplane/zproxyd -> bazel-bin/dataplane/zproxy-dataplane).
#pragma once

#include <string>

namespace zproxy::controlplane {

// `override_path` (from --dataplane) wins when non-empty. Returns false with a message
// listing every path tried.
bool FindDataplaneBinary(const std::string& override_path, std::string* path, std::string* error);

}  // namespace zproxy::controlplane
