#include "controlplane/state/config_manager.h"

#include <google/protobuf/util/message_differencer.h>

#include "controlplane/config/defaults.h"
#include "controlplane/config/validate.h"
#include "controlplane/state/state_file.h"
#include "zproxy/v1/admin.pb.h"

namespace zproxy::state {
namespace {

zproxy::v1::PersistedState MakeState(const zproxy::v1::Config& config, uint64_t version,
                                     const std::string& path, const std::string& sha) {
  zproxy::v1::PersistedState s;
  *s.mutable_config() = config;
  s.set_version(version);
  s.set_file_path(path);
  s.set_file_sha256(sha);
  return s;
}

}  // namespace

StartupConfig ChooseStartupConfig(const zproxy::v1::Config& file_config,
                                  const std::string& file_path, const std::string& file_text) {
  StartupConfig out;
  out.config = file_config;
  out.source = "file";
  const std::string sha = Sha256Hex(file_text);
  const std::string& dir = file_config.state_dir();
  const std::string path = StatePath(dir);
  zproxy::v1::PersistedState saved;
  std::string error;
  switch (LoadState(dir, &saved, &error)) {
    case LoadStatus::kMissing:
      out.note = "no saved state at " + path + ": using " + file_path;
      break;
    case LoadStatus::kError:
      out.note = "ignoring saved state: " + error + "; using " + file_path;
      out.warn = true;
      break;
    case LoadStatus::kOk: {
      out.version = saved.version() + 1;
      if (saved.file_sha256() != sha) {
        out.note = "config file " + file_path + " changed since the state in " + path +
                   " was saved (version " + std::to_string(saved.version()) +
                   "): the file wins and replaces the saved state";
        break;
      }
      zproxy::v1::Config candidate = saved.config();
      config::ApplyDefaults(&candidate);
      OpStatus st = CheckCandidate(file_config, candidate);
      if (!st.ok()) {
        out.note = "saved state in " + path + " is not valid any more (" + st.message +
                   "): using " + file_path;
        out.warn = true;
        break;
      }
      out.config = std::move(candidate);
      out.version = saved.version();
      out.source = "state";
      out.note = "using the state saved in " + path + " (version " +
                 std::to_string(saved.version()) + ", changed through the Admin API; " + file_path +
                 " is unchanged since)";
      return out;  // already persisted as is
    }
  }
  if (!SaveState(dir, MakeState(out.config, out.version, file_path, sha), &error)) {
    out.note += "; cannot save the state (" + error + "): Admin API changes will fail";
    out.warn = true;
  }
  return out;
}

ConfigManager::ConfigManager(controlplane::ConfigStore* store, std::string file_path,
                             std::string file_sha256, HandoverFn handover)
    : store_(store),
      file_path_(std::move(file_path)),
      file_sha256_(std::move(file_sha256)),
      handover_(std::move(handover)) {}

OpStatus ConfigManager::Mutate(uint64_t expected_version, const EditFn& edit,
                               controlplane::ConfigStore::Snapshot* out) {
  std::lock_guard<std::mutex> lock(mu_);
  return MutateLocked(expected_version, edit, file_sha256_, out);
}

OpStatus ConfigManager::ReplaceFromFile(const zproxy::v1::Config& file_config,
                                        const std::string& file_sha256,
                                        controlplane::ConfigStore::Snapshot* out) {
  std::lock_guard<std::mutex> lock(mu_);
  auto replace = [&](zproxy::v1::Config* c) {
    *c = file_merge_ ? file_merge_(file_config, *c) : file_config;
    return OpStatus::Ok();
  };
  const uint64_t before = store_->Current().version;
  OpStatus st = MutateLocked(0, replace, file_sha256, out);
  if (!st.ok() || file_sha256 == file_sha256_) return st;
  file_sha256_ = file_sha256;
  if (out->version != before) return st;  // saved with the new hash already
  // Same config from an edited file (comments, order): no new version, but the state must
  // name the new file's hash or the next start would call the file changed.
  const zproxy::v1::Config& config = *out->config;
  std::string error;
  if (!SaveState(config.state_dir(), State(config, out->version, file_sha256), &error)) {
    return OpStatus::Error(OpStatus::kUnavailable,
                           "config version " + std::to_string(out->version) +
                               " serves, but saving the state failed: " + error);
  }
  return st;
}

std::string ConfigManager::file_sha256() const {
  std::lock_guard<std::mutex> lock(mu_);
  return file_sha256_;
}

OpStatus ConfigManager::MutateLocked(uint64_t expected_version, const EditFn& edit,
                                     const std::string& sha,
                                     controlplane::ConfigStore::Snapshot* out) {
  controlplane::ConfigStore::Snapshot current = store_->Current();
  if (expected_version != 0 && expected_version != current.version) {
    return OpStatus::Error(OpStatus::kFailedPrecondition,
                           "expected_version " + std::to_string(expected_version) +
                               " is stale: the current config version is " +
                               std::to_string(current.version) + " (re-read and retry)");
  }
  zproxy::v1::Config candidate = *current.config;
  OpStatus st = edit(&candidate);
  if (!st.ok()) return st;
  config::ApplyDefaults(&candidate);
  st = CheckCandidate(*current.config, candidate);
  if (!st.ok()) return st;
  if (google::protobuf::util::MessageDifferencer::Equals(candidate, *current.config)) {
    *out = current;  // nothing to do: same version, no handover
    return OpStatus::Ok();
  }
  const uint64_t version = current.version + 1;
  const std::string& dir = candidate.state_dir();
  std::string error;
  if (!SaveState(dir, State(candidate, version, sha), &error)) {
    return OpStatus::Error(OpStatus::kUnavailable, "cannot persist config version " +
                                                       std::to_string(version) + ": " + error +
                                                       "; nothing changed");
  }
  OpStatus applied = OpStatus::Ok();
  if (apply_) {
    applied = apply_(View(candidate), version);
  } else if (!handover_(View(candidate), version, &error)) {
    applied = OpStatus::Error(OpStatus::kUnavailable, error);
  }
  if (!applied.ok()) {
    std::string restore_error;
    std::string restored = "";
    if (!SaveState(dir, State(*current.config, current.version, file_sha256_), &restore_error)) {
      restored = " (and restoring the saved state failed: " + restore_error + ")";
    }
    return OpStatus::Error(applied.code, "the data plane did not take config version " +
                                             std::to_string(version) + ": " + applied.message +
                                             "; still serving version " +
                                             std::to_string(current.version) + restored);
  }
  store_->Publish(std::move(candidate), version);
  *out = store_->Current();
  return OpStatus::Ok();
}

OpStatus ConfigManager::RestartDataplane() {
  std::lock_guard<std::mutex> lock(mu_);
  controlplane::ConfigStore::Snapshot current = store_->Current();
  std::string error;
  if (!handover_(View(*current.config), current.version, &error)) {
    return OpStatus::Error(OpStatus::kUnavailable, "data plane restart failed: " + error +
                                                       "; the previous data plane keeps serving");
  }
  return OpStatus::Ok();
}

OpStatus ConfigManager::Resync(uint64_t dataplane_version) {
  std::lock_guard<std::mutex> lock(mu_);
  controlplane::ConfigStore::Snapshot current = store_->Current();
  if (current.version == dataplane_version || !resync_) return OpStatus::Ok();
  return resync_(View(*current.config), current.version, dataplane_version);
}

zproxy::v1::PersistedState ConfigManager::State(const zproxy::v1::Config& config, uint64_t version,
                                                const std::string& sha) const {
  zproxy::v1::PersistedState s = MakeState(config, version, file_path_, sha);
  s.set_etcd_prefix(etcd_prefix_);
  s.set_etcd_revision(etcd_revision_);
  return s;
}

void ConfigManager::SetFleet(std::string prefix, int64_t revision) {
  std::lock_guard<std::mutex> lock(mu_);
  etcd_prefix_ = std::move(prefix);
  etcd_revision_ = revision;
}

int64_t ConfigManager::etcd_revision() const {
  std::lock_guard<std::mutex> lock(mu_);
  return etcd_revision_;
}

OpStatus ConfigManager::ApplyFleet(const EditFn& edit, int64_t revision, bool follow_store,
                                   controlplane::ConfigStore::Snapshot* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!follow_store && revision <= etcd_revision_) {
    *out = store_->Current();
    return OpStatus::Ok();
  }
  const int64_t before = etcd_revision_;
  // Saved with the state of the new config (MutateLocked persists State()).
  etcd_revision_ = revision;
  const uint64_t version_before = store_->Current().version;
  OpStatus st = MutateLocked(0, edit, file_sha256_, out);
  if (!st.ok()) {
    etcd_revision_ = before;
    // MutateLocked may have restored the state under the refused revision: name ours.
    const controlplane::ConfigStore::Snapshot current = store_->Current();
    std::string error;
    if (current.config != nullptr) {
      (void)SaveState(current.config->state_dir(),
                      State(*current.config, current.version, file_sha256_), &error);
    }
    return st;
  }
  if (out->version == version_before) {
    // Same config under a new revision (e.g. a write that changed nothing we serve):
    // nothing was saved, but the state must name the revision.
    std::string error;
    const zproxy::v1::Config& config = *out->config;
    if (!SaveState(config.state_dir(), State(config, out->version, file_sha256_), &error)) {
      return OpStatus::Error(OpStatus::kUnavailable,
                             "fleet revision " + std::to_string(revision) +
                                 " serves, but saving the state failed: " + error);
    }
  }
  return OpStatus::Ok();
}

zproxy::v1::Config ConfigManager::View(const zproxy::v1::Config& config) const {
  return view_ ? view_(config) : DataplaneView(config);
}

OpStatus ConfigManager::RefreshEndpoints() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!refresh_) return OpStatus::Ok();
  controlplane::ConfigStore::Snapshot current = store_->Current();
  return refresh_(View(*current.config), current.version);
}

}  // namespace zproxy::state
