// The Admin API's write path, without gRPC: compare-and-set on the version, edit a copy,
// validate the whole result, persist it, hand it to the data plane, and only then publish
// it. Mutations are serialized; a failure at any step leaves everything as it was.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "controlplane/config_store.h"
#include "controlplane/state/config_ops.h"
#include "zproxy/v1/admin.pb.h"
#include "zproxy/v1/config.pb.h"

namespace zproxy::state {

// Where the config zproxyd starts with came from (docs/admin-api.md: "File vs. API
// precedence").
struct StartupConfig {
  zproxy::v1::Config config;
  uint64_t version = 1;
  std::string source;  // "file" or "state"
  std::string note;    // what was decided and why, for the log
  bool warn = false;   // the note is a warning (state unreadable / invalid / not saved)
};

// The persisted state wins if it was derived from a file with the same SHA-256 as
// `file_text` (so routes added through the API survive restarts); otherwise the file wins
// and the state is replaced. Versions continue from the persisted one either way.
StartupConfig ChooseStartupConfig(const zproxy::v1::Config& file_config,
                                  const std::string& file_path, const std::string& file_text);

class ConfigManager {
 public:
  // Starts `dataplane_config` as `version` and returns once it serves, or false + *error.
  using HandoverFn = std::function<bool(const zproxy::v1::Config& dataplane_config,
                                        uint64_t version, std::string* error)>;
  using EditFn = std::function<OpStatus(zproxy::v1::Config*)>;
  // Makes the running data plane serve `dataplane_config` as `version` (pushed over the
  // sync stream, or a handover when that cannot work). Its error code is kept, e.g.
  // kFailedPrecondition when the data plane rejected the snapshot.
  using ApplyFn =
      std::function<OpStatus(const zproxy::v1::Config& dataplane_config, uint64_t version)>;

  ConfigManager(controlplane::ConfigStore* store, std::string file_path, std::string file_sha256,
                HandoverFn handover);

  // expected_version 0 = unconditional. On success *out is the new current snapshot (or the
  // unchanged one when the edit changed nothing: no new version, no handover).
  OpStatus Mutate(uint64_t expected_version, const EditFn& edit,
                  controlplane::ConfigStore::Snapshot* out);

  // SIGHUP: the config file was re-read and parsed (`file_config`, defaults applied) and
  // replaces the current config on the same path as ApplyConfig (validate, persist, apply
  // live or hand over, publish). The persisted state then records `file_sha256`, so a
  // restart with the same file keeps it. Restart-only fields that differ are refused like
  // any Admin API change (the message names each field).
  OpStatus ReplaceFromFile(const zproxy::v1::Config& file_config, const std::string& file_sha256,
                           controlplane::ConfigStore::Snapshot* out);

  // Mutations go through `apply` instead of the handover (which RestartDataplane keeps
  // using). Call before the first mutation.
  void SetApply(ApplyFn apply) { apply_ = std::move(apply); }

  // A new data plane with the current config (zproxyctl dataplane restart).
  OpStatus RestartDataplane();

  // The data plane serving now reported `dataplane_version` (its Hello): if that is not the
  // current version, `resync` makes it serve the current config. Serialized with mutations,
  // so a resync never overtakes a newer change.
  using ResyncFn = std::function<OpStatus(const zproxy::v1::Config& dataplane_config,
                                          uint64_t version, uint64_t dataplane_version)>;
  void SetResync(ResyncFn resync) { resync_ = std::move(resync); }
  OpStatus Resync(uint64_t dataplane_version);

  // What the data plane is given for a config: DataplaneView, and (set by zproxyd with
  // DNS discovery) host-name endpoints expanded to their addresses. Call before the first
  // mutation.
  using ViewFn = std::function<zproxy::v1::Config(const zproxy::v1::Config& config)>;
  void SetView(ViewFn view) { view_ = std::move(view); }

  // DNS discovery found new addresses: the current config's view goes to the data plane
  // again under the same version (`refresh`), serialized with mutations so it never
  // overtakes a newer config.
  using RefreshFn =
      std::function<OpStatus(const zproxy::v1::Config& dataplane_config, uint64_t version)>;
  void SetRefresh(RefreshFn refresh) { refresh_ = std::move(refresh); }
  OpStatus RefreshEndpoints();

  // Fleet mode (docs/fleet.md): the persisted state records the etcd prefix and the
  // revision of the fleet config it holds. Call before the first mutation.
  void SetFleet(std::string prefix, int64_t revision);
  // The fleet config at etcd `revision` (the edit merges it into the node's config): the
  // same path as a mutation (validate, persist, apply, publish), remembering `revision`.
  // A revision not newer than the one applied is skipped (the watch and the writer both
  // deliver each one), unless `follow_store` (etcd was restored to an older revision, or a
  // full re-read: the store is the truth).
  OpStatus ApplyFleet(const EditFn& edit, int64_t revision, bool follow_store,
                      controlplane::ConfigStore::Snapshot* out);
  int64_t etcd_revision() const;

  // Fleet mode: what a SIGHUP makes of the re-read file (its node-local fields with the
  // current fleet part), applied under the mutation lock.
  using FileMergeFn = std::function<zproxy::v1::Config(const zproxy::v1::Config& file_config,
                                                       const zproxy::v1::Config& current)>;
  void SetFileMerge(FileMergeFn merge) { file_merge_ = std::move(merge); }

  controlplane::ConfigStore::Snapshot Current() const { return store_->Current(); }
  std::string file_sha256() const;
  const std::string& file_path() const { return file_path_; }

 private:
  // Mutate's body, under mu_; the persisted state records `sha`.
  OpStatus MutateLocked(uint64_t expected_version, const EditFn& edit, const std::string& sha,
                        controlplane::ConfigStore::Snapshot* out);

  zproxy::v1::Config View(const zproxy::v1::Config& config) const;
  zproxy::v1::PersistedState State(const zproxy::v1::Config& config, uint64_t version,
                                   const std::string& sha) const;

  mutable std::mutex mu_;  // one mutation at a time, end to end
  controlplane::ConfigStore* store_;
  const std::string file_path_;
  std::string file_sha256_;  // under mu_: changed by ReplaceFromFile
  HandoverFn handover_;
  ApplyFn apply_;
  ResyncFn resync_;
  ViewFn view_;
  RefreshFn refresh_;
  FileMergeFn file_merge_;
  std::string etcd_prefix_;    // under mu_; empty: not in fleet mode
  int64_t etcd_revision_ = 0;  // under mu_
};

}  // namespace zproxy::state
