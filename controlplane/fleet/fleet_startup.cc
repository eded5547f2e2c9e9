#include "controlplane/fleet/fleet_startup.h"

#include <unistd.h>

#include "controlplane/config/defaults.h"
#include "controlplane/fleet/fleet_doc.h"
#include "controlplane/state/config_ops.h"
#include "controlplane/state/state_file.h"

namespace zproxy::fleet {
namespace {

using zproxy::v1::Config;

// The node's config from a fleet part, or false + *why.
bool Candidate(const Config& file_config, const Config& fleet, Config* out, std::string* why) {
  Config c = MergeNode(file_config, fleet);
  config::ApplyDefaults(&c);
  // At start nothing serves yet: no field is "changed at run time".
  state::OpStatus st = state::CheckCandidate(c, c);
  if (!st.ok()) {
    *why = st.message;
    return false;
  }
  *out = std::move(c);
  return true;
}

}  // namespace

std::string NodeName(const Config& config) {
  if (!config.node().name().empty()) return config.node().name();
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) return "zproxy";
  return host;
}

FleetStart ChooseFleetStartupConfig(const Config& file_config, const std::string& file_path,
                                    EtcdClient* client) {
  FleetStart out;
  state::StartupConfig& s = out.startup;
  const std::string prefix = NormalizePrefix(file_config.config_source().etcd().prefix());
  const std::string key = ConfigKey(prefix);
  const std::string& dir = file_config.state_dir();
  zproxy::v1::PersistedState saved;
  std::string error;
  const state::LoadStatus loaded = state::LoadState(dir, &saved, &error);
  // Local versions only grow (the data plane refuses an older one), whatever etcd says.
  s.version = loaded == state::LoadStatus::kOk ? saved.version() + 1 : 1;

  mvccpb::KeyValue kv;
  bool found = false;
  int64_t header = 0;
  std::string etcd_error;
  bool reached = client->Get(key, &kv, &found, &header, &etcd_error);
  out.reached = reached;
  if (reached && !found) {
    EtcdClient::TxnOutcome txn;
    const std::string seed = SerializeFleet(FleetPart(file_config));
    if (!client->PutIf(key, seed, 0, &txn, &etcd_error)) {
      reached = false;
      out.reached = false;
    } else if (txn.succeeded) {
      s.config = file_config;
      s.source = "etcd (seeded)";
      s.note = key + " was empty: seeded it from " + file_path + " (revision " +
               std::to_string(txn.revision) + ")";
      out.revision = txn.revision;
    } else {
      found = txn.found;  // another node seeded first: use its config
      kv = txn.current;
    }
  }
  std::string why;
  if (reached && found) {
    Config fleet;
    if (ParseFleet(kv.value(), &fleet, &why) && Candidate(file_config, fleet, &s.config, &why)) {
      s.source = "etcd";
      s.note = "fleet config revision " + std::to_string(kv.mod_revision()) + " from " + key;
      out.revision = kv.mod_revision();
    } else {
      s.note = "fleet config revision " + std::to_string(kv.mod_revision()) + " in " + key +
               " is invalid (" + why + ")";
      s.warn = true;
      reached = false;  // as if unreachable: the snapshot, then the file
    }
  } else if (!reached) {
    s.note = "etcd unreachable (" + etcd_error + ")";
    s.warn = true;
  }
  if (s.source.empty()) {
    if (loaded == state::LoadStatus::kOk && saved.etcd_prefix() == prefix &&
        saved.etcd_revision() > 0 &&
        Candidate(file_config, FleetPart(saved.config()), &s.config, &why)) {
      s.source = "snapshot";
      out.revision = saved.etcd_revision();
      s.note += ": serving the snapshot in " + state::StatePath(dir) + " (fleet revision " +
                std::to_string(saved.etcd_revision()) + ") until etcd answers";
    } else {
      s.config = file_config;
      s.source = "file";
      s.note += ": no usable snapshot in " + state::StatePath(dir) + ", serving " + file_path +
                "'s listeners and clusters until etcd answers";
    }
  }
  zproxy::v1::PersistedState st;
  *st.mutable_config() = s.config;
  st.set_version(s.version);
  st.set_file_path(file_path);
  st.set_etcd_prefix(prefix);
  st.set_etcd_revision(out.revision);
  if (!state::SaveState(dir, st, &error)) {
    s.note += "; cannot save the state (" + error + ")";
    s.warn = true;
  }
  return out;
}

}  // namespace zproxy::fleet
