#include "controlplane/config_store.h"

namespace zproxy::controlplane {

uint64_t ConfigStore::Publish(zproxy::v1::Config config) {
  auto snapshot = std::make_shared<const zproxy::v1::Config>(std::move(config));
  std::lock_guard<std::mutex> lock(mu_);
  current_.config = std::move(snapshot);
  return ++current_.version;
}

void ConfigStore::Publish(zproxy::v1::Config config, uint64_t version) {
  auto snapshot = std::make_shared<const zproxy::v1::Config>(std::move(config));
  std::lock_guard<std::mutex> lock(mu_);
  current_.config = std::move(snapshot);
  current_.version = version;
}

ConfigStore::Snapshot ConfigStore::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

}  // namespace zproxy::controlplane
