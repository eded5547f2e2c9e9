// Pin lifecycle: pins appear after load+attach, a second load reuses compatible pinned maps
// (same map id: contents survive a restart), an incompatible pin is replaced, and a clean
// shutdown unpins unless keep_pins.
#include "controlplane/bpf/pins.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstring>

#include "controlplane/bpf/bpffs.h"
#include "controlplane/bpf/health_map.h"
#include "controlplane/bpf/splice_map.h"
#include "controlplane/bpf/test_util.h"
#include "gtest/gtest.h"

namespace zproxy::controlplane::bpf {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

uint32_t MapId(int fd) {
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  return bpf_obj_get_info_by_fd(fd, &info, &len) == 0 ? info.id : 0;
}

uint32_t PinnedMapId(const std::string& path) {
  UniqueFd fd(bpf_obj_get(path.c_str()));
  return fd.valid() ? MapId(fd.get()) : 0;
}

class PinsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    opts_.pin_dir =
        testing::TestPinDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { testing::RemoveDir(opts_.pin_dir); }
  BpfOptions opts_;
};

TEST_F(PinsTest, CreatesBpffsDirectory) {
  std::string error;
  ASSERT_TRUE(EnsureBpffsDir(opts_.pin_dir, &error)) << error;
  EXPECT_TRUE(IsOnBpffs(opts_.pin_dir));
}

TEST_F(PinsTest, PinsAfterLoadAndUnpinsOnShutdown) {
  std::string error;
  {
    SpliceMap map;
    ASSERT_TRUE(map.Load(opts_, &error)) << error;
    for (const char* name :
         {"zproxy_splice_pairs", "zproxy_pair_peer", "zproxy_counters", "zproxy_splice"}) {
      EXPECT_TRUE(Exists(opts_.pin_dir + "/" + name)) << name;
    }
  }
  EXPECT_FALSE(Exists(opts_.pin_dir + "/zproxy_counters"));
  EXPECT_FALSE(Exists(opts_.pin_dir + "/zproxy_splice"));
}

TEST_F(PinsTest, RestartReusesCompatiblePins) {
  std::string error;
  opts_.keep_pins = true;
  uint32_t id;
  {
    HealthMap first;
    ASSERT_TRUE(first.Load(opts_, &error)) << error;
    EXPECT_FALSE(first.reused());
    id = MapId(first.fd());
    zproxy_health_region* r = MapHealthRegion(first.fd(), true);
    ASSERT_NE(r, nullptr);
    r->health[3] = 0;
    munmap(r, HealthMapMmapSize());
  }
  // Kept: the pin holds the map alive after its owner is gone.
  EXPECT_EQ(PinnedMapId(opts_.pin_dir + "/zproxy_health"), id);
  opts_.keep_pins = false;
  HealthMap second;
  ASSERT_TRUE(second.Load(opts_, &error)) << error;
  EXPECT_TRUE(second.reused());
  EXPECT_EQ(MapId(second.fd()), id);
  zproxy_health_region* r = MapHealthRegion(second.fd(), false);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->health[3], 0);  // contents survived
  EXPECT_EQ(r->health[4], 1);
  munmap(r, HealthMapMmapSize());

  SpliceMap s1;
  ASSERT_TRUE(s1.Load(opts_, &error)) << error;
  SpliceMap s2;  // a second owner while the first runs: adopts all three maps
  ASSERT_TRUE(s2.Load(opts_, &error)) << error;
  EXPECT_EQ(s2.skeleton().pins().reused().size(), 3u);
  EXPECT_EQ(MapId(s2.counters_fd()), MapId(s1.counters_fd()));
}

TEST_F(PinsTest, IncompatiblePinIsReplaced) {
  std::string error;
  ASSERT_TRUE(EnsureBpffsDir(opts_.pin_dir, &error)) << error;
  // Same name, different value size: an older layout.
  UniqueFd old(bpf_map_create(BPF_MAP_TYPE_ARRAY, "zproxy_health", 4, 8, 1, nullptr));
  ASSERT_TRUE(old.valid());
  const std::string path = opts_.pin_dir + "/zproxy_health";
  ASSERT_EQ(bpf_obj_pin(old.get(), path.c_str()), 0);
  HealthMap map;
  ASSERT_TRUE(map.Load(opts_, &error)) << error;
  EXPECT_FALSE(map.reused());
  EXPECT_EQ(PinnedMapId(path), MapId(map.fd()));
  EXPECT_NE(MapId(old.get()), MapId(map.fd()));
}

// zproxy before socket-cookie keys: zproxy_splice_pairs keyed by a 16-byte IPv4 4-tuple,
// zproxy_pair_peer a HASH of 4-tuples. Both are replaced, the counters kept.
TEST_F(PinsTest, OldSpliceLayoutIsReplaced) {
  std::string error;
  opts_.keep_pins = true;
  {
    SpliceMap current;
    ASSERT_TRUE(current.Load(opts_, &error)) << error;
  }
  opts_.keep_pins = false;
  UniqueFd pairs(bpf_map_create(BPF_MAP_TYPE_SOCKHASH, "zproxy_splice_p", 16, 8, 65536, nullptr));
  UniqueFd peer(bpf_map_create(BPF_MAP_TYPE_HASH, "zproxy_pair_pee", 16, 16, 65536, nullptr));
  ASSERT_TRUE(pairs.valid() && peer.valid());
  for (auto [fd, name] :
       {std::pair{pairs.get(), "zproxy_splice_pairs"}, std::pair{peer.get(), "zproxy_pair_peer"}}) {
    const std::string path = opts_.pin_dir + "/" + name;
    ASSERT_EQ(unlink(path.c_str()), 0);
    ASSERT_EQ(bpf_obj_pin(fd, path.c_str()), 0);
  }
  uint32_t counters_id = PinnedMapId(opts_.pin_dir + "/zproxy_counters");
  SpliceMap map;
  ASSERT_TRUE(map.Load(opts_, &error)) << error;
  const Pins& pins = map.skeleton().pins();
  EXPECT_EQ(pins.reused(), std::vector<std::string>{"zproxy_counters"});
  ASSERT_EQ(pins.replaced().size(), 2u);
  EXPECT_EQ(pins.replaced()[1], "zproxy_splice_pairs (key bytes 16, now 8)");
  EXPECT_EQ(pins.replaced()[0],
            "zproxy_pair_peer (type hash, now sockhash; key bytes 16, now 8; "
            "value bytes 16, now 8)");
  EXPECT_EQ(PinnedMapId(opts_.pin_dir + "/zproxy_splice_pairs"), MapId(map.pairs_fd()));
  EXPECT_EQ(PinnedMapId(opts_.pin_dir + "/zproxy_pair_peer"), MapId(map.peer_fd()));
  EXPECT_EQ(MapId(map.counters_fd()), counters_id);
}

// Same type and sizes but another field layout (a counter renamed): reusing it would keep
// the old BTF, and bpftool would print the old name over the new meaning. Replaced.
TEST_F(PinsTest, SameSizesOtherFieldsIsReplaced) {
  std::string error;
  ASSERT_TRUE(EnsureBpffsDir(opts_.pin_dir, &error)) << error;
  btf* b = btf__new_empty();
  ASSERT_NE(b, nullptr);
  int u32 = btf__add_int(b, "unsigned int", 4, 0);
  int u64 = btf__add_int(b, "unsigned long long", 8, 0);
  int counters = btf__add_struct(b, "zproxy_splice_counters", 32);
  ASSERT_EQ(btf__add_field(b, "spliced_bytes", u64, 0, 0), 0);
  ASSERT_EQ(btf__add_field(b, "spliced_packets", u64, 64, 0), 0);
  ASSERT_EQ(btf__add_field(b, "errors", u64, 128, 0), 0);
  ASSERT_EQ(btf__add_field(b, "no_peer", u64, 192, 0), 0);
  ASSERT_EQ(btf__load_into_kernel(b), 0);
  LIBBPF_OPTS(bpf_map_create_opts, o, .btf_fd = static_cast<__u32>(btf__fd(b)),
              .btf_key_type_id = static_cast<__u32>(u32),
              .btf_value_type_id = static_cast<__u32>(counters));
  UniqueFd old(bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "zproxy_counters", 4, 32, 1, &o));
  btf__free(b);
  ASSERT_TRUE(old.valid()) << std::strerror(errno);
  const std::string path = opts_.pin_dir + "/zproxy_counters";
  ASSERT_EQ(bpf_obj_pin(old.get(), path.c_str()), 0);
  SpliceMap map;
  ASSERT_TRUE(map.Load(opts_, &error)) << error;
  ASSERT_EQ(map.skeleton().pins().replaced().size(), 1u);
  const std::string& why = map.skeleton().pins().replaced()[0];
  EXPECT_EQ(why.rfind("zproxy_counters (value layout zproxy_splice_counters{", 0), 0u) << why;
  EXPECT_NE(why.find("errors@128:unsigned long long/8;"), std::string::npos) << why;
  EXPECT_NE(why.find("redirect_errors@128:unsigned long long/8;"), std::string::npos) << why;
  EXPECT_EQ(PinnedMapId(path), MapId(map.counters_fd()));
}

}  // namespace
}  // namespace zproxy::controlplane::bpf
