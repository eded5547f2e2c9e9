// The current configuration and its version. Today the file loaded at startup is version 1;
// the Admin API issue will publish new versions here and stream them to the data plane.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "zproxy/v1/config.pb.h"

namespace zproxy::controlplane {

class ConfigStore {
 public:
  struct Snapshot {
    std::shared_ptr<const zproxy::v1::Config> config;  // immutable once published
    uint64_t version = 0;                              // 0 = nothing published yet
  };

  // Publishes a validated config (with defaults applied) and returns its version.
  uint64_t Publish(zproxy::v1::Config config);
  // Publishes with an explicit version (the Admin API's versions continue across restarts).
  void Publish(zproxy::v1::Config config, uint64_t version);

  Snapshot Current() const;

 private:
  mutable std::mutex mu_;  // the gRPC threads of the Admin API will publish concurrently
  Snapshot current_;
};

}  // namespace zproxy::controlplane
