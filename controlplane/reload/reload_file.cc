#include "controlplane/reload/reload_file.h"

#include <fstream>
#include <sstream>

#include "common/log.h"
#include "controlplane/config/load.h"
#include "controlplane/state/state_file.h"

namespace zproxy::reload {
namespace {

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

}  // namespace

ReloadOutcome ReloadFromFile(state::ConfigManager& manager, const std::string& path) {
  ReloadOutcome out;
  out.version = manager.Current().version;
  // One read: the text that is validated is the text whose hash is recorded.
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    out.errors.push_back(path + ": cannot open the config file");
    return out;
  }
  std::ostringstream text;
  text << in.rdbuf();
  const std::string file_text = text.str();
  config::LoadResult loaded = config::LoadConfigYaml(file_text, path);
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) out.errors.push_back(e.ToString());
    return out;
  }
  controlplane::ConfigStore::Snapshot snap;
  const uint64_t before = out.version;
  state::OpStatus st = manager.ReplaceFromFile(loaded.config, state::Sha256Hex(file_text), &snap);
  if (!st.ok()) {
    out.kind = ReloadOutcome::kRefused;
    out.errors = SplitLines(st.message);
    out.version = manager.Current().version;
    return out;
  }
  out.version = snap.version;
  out.kind = snap.version == before ? ReloadOutcome::kUnchanged : ReloadOutcome::kApplied;
  return out;
}

void LogReloadOutcome(const ReloadOutcome& o, const std::string& path) {
  const auto v = static_cast<unsigned long long>(o.version);
  switch (o.kind) {
    case ReloadOutcome::kApplied:
      ZLOG_INFO("reload: %s is live as config version %llu", path.c_str(), v);
      return;
    case ReloadOutcome::kUnchanged:
      ZLOG_INFO("reload: %s is unchanged; config version %llu keeps serving", path.c_str(), v);
      return;
    case ReloadOutcome::kInvalid:
      for (const auto& e : o.errors) ZLOG_ERROR("reload: %s", e.c_str());
      ZLOG_ERROR("reload: %s has %zu error%s; config version %llu keeps serving", path.c_str(),
                 o.errors.size(), o.errors.size() == 1 ? "" : "s", v);
      return;
    case ReloadOutcome::kRefused:
      for (const auto& e : o.errors) ZLOG_ERROR("reload: %s", e.c_str());
      ZLOG_ERROR("reload: %s not applied; config version %llu keeps serving", path.c_str(), v);
      return;
  }
}

}  // namespace zproxy::reload
