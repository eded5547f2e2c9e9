// Semantic checks on a Config (after ApplyDefaults): everything the YAML mapper cannot know,
// such as cross references, address syntax and io_uring sizing. Every error names the
// field, and all errors are collected so one run shows every problem.
#pragma once

#include <cstdint>

#include "controlplane/config/config_error.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::config {

struct Limits {
  static constexpr uint32_t kMaxWorkers = 1024;
  static constexpr uint32_t kMaxSqDepth = 32768;   // IORING_MAX_ENTRIES
  static constexpr uint32_t kMaxBufCount = 32768;  // provided buffer ring entries (u16 bid)
  static constexpr uint32_t kMinBufSize = 4096;
  static constexpr uint32_t kMaxBufSize = 1 << 20;
  static constexpr uint32_t kMaxHeaders = 128;
  static constexpr uint32_t kMaxEndpointWeight = 1000;
};

// Expects defaults applied (a 0 sq_depth or buf_size is reported as invalid, not defaulted).
// Errors carry field_path and message only; LoadConfig adds file locations.
ConfigErrors ValidateConfig(const zproxy::v1::Config& config);

// Host pattern check shared with the Admin API: "a.example", "*.example", "1.2.3.4",
// "[::1]". Returns false with a reason in *error.
bool ValidateHostPattern(const std::string& host, std::string* error);

// RFC 9110 token (method names).
bool IsHttpToken(const std::string& text);

}  // namespace zproxy::config
