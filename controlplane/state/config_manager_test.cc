#include "controlplane/state/config_manager.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "controlplane/config/defaults.h"
#include "controlplane/config/testing/minimal_config.h"
#include "controlplane/state/state_file.h"

namespace zproxy::state {
namespace {

using zproxy::v1::Config;

std::string TempDir() {
  std::string t =
      std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/state-XXXXXX";
  return mkdtemp(t.data());
}

Config Base(const std::string& dir) {
  Config c = config::testing::MinimalConfig();
  c.set_state_dir(dir);
  config::ApplyDefaults(&c);
  return c;
}

TEST(ConfigManager, CompareAndSetPersistAndRollback) {
  const std::string dir = TempDir();
  StartupConfig start = ChooseStartupConfig(Base(dir), "f.yaml", "text-1");
  EXPECT_EQ(start.source, "file");
  controlplane::ConfigStore store;
  store.Publish(start.config, start.version);
  bool fail = false;
  int handovers = 0;
  ConfigManager m(&store, "f.yaml", Sha256Hex("text-1"),
                  [&](const Config&, uint64_t, std::string* error) {
                    ++handovers;
                    if (fail) *error = "boom";
                    return !fail;
                  });
  auto add_route = [](Config* c) {
    auto* r = c->mutable_listeners(0)->add_routes();
    r->mutable_match()->set_prefix("/p/");
    r->set_cluster("app");
    return OpStatus::Ok();
  };
  controlplane::ConfigStore::Snapshot snap;
  OpStatus st = m.Mutate(99, add_route, &snap);
  EXPECT_EQ(st.code, OpStatus::kFailedPrecondition);
  EXPECT_NE(st.message.find("current config version is 1"), std::string::npos) << st.message;
  ASSERT_TRUE(m.Mutate(1, add_route, &snap).ok());
  EXPECT_EQ(snap.version, 2u);
  EXPECT_EQ(handovers, 1);

  fail = true;
  st = m.Mutate(
      0,
      [](Config* c) {
        c->set_drain_timeout_ms(1234);
        return OpStatus::Ok();
      },
      &snap);
  EXPECT_EQ(st.code, OpStatus::kUnavailable);
  EXPECT_EQ(store.Current().version, 2u);

  // Same file text: the persisted state (with the API's route) wins over the file.
  StartupConfig again = ChooseStartupConfig(Base(dir), "f.yaml", "text-1");
  EXPECT_EQ(again.source, "state");
  EXPECT_EQ(again.version, 2u);
  EXPECT_EQ(again.config.listeners(0).routes_size(), 2);
  // Edited file: the file wins, the version keeps growing.
  StartupConfig edited = ChooseStartupConfig(Base(dir), "f.yaml", "text-2");
  EXPECT_EQ(edited.source, "file");
  EXPECT_EQ(edited.version, 3u);
  EXPECT_EQ(edited.config.listeners(0).routes_size(), 1);
}

TEST(ConfigManager, ApplyErrorKeepsItsCodeAndRestoresTheState) {
  const std::string dir = TempDir();
  StartupConfig start = ChooseStartupConfig(Base(dir), "f.yaml", "text-1");
  controlplane::ConfigStore store;
  store.Publish(start.config, start.version);
  int handovers = 0;
  ConfigManager m(&store, "f.yaml", Sha256Hex("text-1"),
                  [&](const Config&, uint64_t, std::string*) { return ++handovers > 0; });
  uint64_t pushed = 0;
  m.SetApply([&](const Config&, uint64_t version) {
    pushed = version;
    return OpStatus::Error(OpStatus::kFailedPrecondition, "rejected by the data plane: nope");
  });
  controlplane::ConfigStore::Snapshot snap;
  OpStatus st = m.Mutate(
      0,
      [](Config* c) {
        c->set_drain_timeout_ms(1234);
        return OpStatus::Ok();
      },
      &snap);
  EXPECT_EQ(pushed, 2u);
  EXPECT_EQ(st.code, OpStatus::kFailedPrecondition);
  EXPECT_NE(st.message.find("rejected by the data plane: nope"), std::string::npos) << st.message;
  EXPECT_NE(st.message.find("still serving version 1"), std::string::npos) << st.message;
  EXPECT_EQ(store.Current().version, 1u);
  zproxy::v1::PersistedState saved;
  std::string error;
  ASSERT_EQ(LoadState(dir, &saved, &error), LoadStatus::kOk) << error;
  EXPECT_EQ(saved.version(), 1u);
  // RestartDataplane still uses the handover, never the push.
  EXPECT_TRUE(m.RestartDataplane().ok());
  EXPECT_EQ(handovers, 1);
}

TEST(ConfigManager, ReplaceFromFileAppliesRefusesAndRecordsTheNewFile) {
  const std::string dir = TempDir();
  StartupConfig start = ChooseStartupConfig(Base(dir), "f.yaml", "text-1");
  controlplane::ConfigStore store;
  store.Publish(start.config, start.version);
  ConfigManager m(&store, "f.yaml", Sha256Hex("text-1"),
                  [](const Config&, uint64_t, std::string*) { return true; });
  int pushes = 0;
  m.SetApply([&](const Config&, uint64_t) {
    ++pushes;
    return OpStatus::Ok();
  });
  controlplane::ConfigStore::Snapshot snap;

  // A restart-only field: refused with the field named, nothing changes.
  Config moved = Base(dir);
  moved.set_workers(7);
  OpStatus st = m.ReplaceFromFile(moved, Sha256Hex("text-2"), &snap);
  EXPECT_EQ(st.code, OpStatus::kInvalidArgument);
  EXPECT_NE(st.message.find("workers: cannot change at run time"), std::string::npos) << st.message;
  EXPECT_EQ(store.Current().version, 1u);
  EXPECT_EQ(m.file_sha256(), Sha256Hex("text-1"));

  // A live change: applied like ApplyConfig, persisted with the new file's hash.
  Config edited = Base(dir);
  edited.set_drain_timeout_ms(4321);
  ASSERT_TRUE(m.ReplaceFromFile(edited, Sha256Hex("text-3"), &snap).ok());
  EXPECT_EQ(snap.version, 2u);
  EXPECT_EQ(pushes, 1);
  EXPECT_EQ(m.file_sha256(), Sha256Hex("text-3"));
  StartupConfig after = ChooseStartupConfig(Base(dir), "f.yaml", "text-3");
  EXPECT_EQ(after.source, "state");
  EXPECT_EQ(after.config.drain_timeout_ms(), 4321u);

  // The same config from a file edited only in form: no new version, no push, new hash.
  ASSERT_TRUE(m.ReplaceFromFile(edited, Sha256Hex("text-4"), &snap).ok());
  EXPECT_EQ(snap.version, 2u);
  EXPECT_EQ(pushes, 1);
  zproxy::v1::PersistedState saved;
  std::string error;
  ASSERT_EQ(LoadState(dir, &saved, &error), LoadStatus::kOk) << error;
  EXPECT_EQ(saved.file_sha256(), Sha256Hex("text-4"));
  EXPECT_EQ(saved.version(), 2u);
}

TEST(ConfigManager, FleetRevisionsAreAppliedOnceAndRecordedInTheState) {
  const std::string dir = TempDir();
  controlplane::ConfigStore store;
  store.Publish(Base(dir), 1);
  int handovers = 0;
  ConfigManager m(&store, "f.yaml", "", [&](const Config&, uint64_t, std::string*) {
    ++handovers;
    return true;
  });
  m.SetFleet("/zproxy/a/", 10);
  auto with_route = [](const std::string& prefix) {
    return [prefix](Config* c) {
      auto* r = c->mutable_listeners(0)->add_routes();
      r->mutable_match()->set_prefix(prefix);
      r->set_cluster("app");
      return OpStatus::Ok();
    };
  };
  controlplane::ConfigStore::Snapshot snap;
  ASSERT_TRUE(m.ApplyFleet(with_route("/p/"), 12, false, &snap).ok());
  EXPECT_EQ(snap.version, 2u);
  EXPECT_EQ(m.etcd_revision(), 12);
  // The writer's own apply and its watch event: the second is skipped, as is anything older.
  ASSERT_TRUE(m.ApplyFleet(with_route("/q/"), 12, false, &snap).ok());
  ASSERT_TRUE(m.ApplyFleet(with_route("/q/"), 11, false, &snap).ok());
  EXPECT_EQ(snap.version, 2u);
  EXPECT_EQ(handovers, 1);
  // A store restored to an older revision is followed when the caller says so.
  ASSERT_TRUE(m.ApplyFleet(with_route("/r/"), 8, true, &snap).ok());
  EXPECT_EQ(m.etcd_revision(), 8);
  EXPECT_EQ(snap.version, 3u);
  zproxy::v1::PersistedState saved;
  std::string error;
  ASSERT_EQ(LoadState(dir, &saved, &error), LoadStatus::kOk) << error;
  EXPECT_EQ(saved.etcd_revision(), 8);
  EXPECT_EQ(saved.etcd_prefix(), "/zproxy/a/");
  EXPECT_EQ(saved.version(), 3u);
  // A refused revision keeps the applied one, in memory and on disk.
  auto invalid = [](Config* c) {
    c->mutable_listeners(0)->mutable_routes(0)->set_cluster("nope");
    return OpStatus::Ok();
  };
  OpStatus st = m.ApplyFleet(invalid, 20, false, &snap);
  EXPECT_EQ(st.code, OpStatus::kInvalidArgument);
  EXPECT_NE(st.message.find("unknown cluster"), std::string::npos) << st.message;
  EXPECT_EQ(m.etcd_revision(), 8);
  ASSERT_EQ(LoadState(dir, &saved, &error), LoadStatus::kOk) << error;
  EXPECT_EQ(saved.etcd_revision(), 8);
}

}  // namespace
}  // namespace zproxy::state
