// The health map is the health region: header and all-healthy slots from the start, and a
// write through one mapping is visible through another (as zproxyd writes and the data
// plane reads) and through the syscall interface bpftool uses.
#include "controlplane/bpf/health_map.h"

#include <bpf/bpf.h>
#include <sys/mman.h>

#include <vector>

#include "common/health_region.h"
#include "common/unique_fd.h"
#include "gtest/gtest.h"

namespace zproxy::controlplane::bpf {
namespace {

TEST(HealthMap, FreshMapHoldsTheHeaderAndHealthySlots) {
  HealthMap map;
  std::string error;
  ASSERT_TRUE(map.Load(BpfOptions{}, &error)) << error;
  zproxy_health_region* r = MapHealthRegion(map.fd(), false);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->header.magic, HealthRegionHeader::kMagic);
  EXPECT_EQ(r->header.slot_count, HealthRegion::kDefaultSlots);
  EXPECT_EQ(r->header.slots_offset, sizeof(HealthRegionHeader));
  for (uint32_t i = 0; i < ZPROXY_HEALTH_SLOTS; i++) ASSERT_EQ(r->health[i], 1) << i;
  munmap(r, HealthMapMmapSize());
}

TEST(HealthMap, WritesAreSeenThroughASecondMappingAndTheSyscall) {
  HealthMap map;
  std::string error;
  ASSERT_TRUE(map.Load(BpfOptions{}, &error)) << error;
  zproxy_health_region* writer = MapHealthRegion(map.fd(), true);
  zproxy_health_region* reader = MapHealthRegion(map.fd(), false);
  ASSERT_NE(writer, nullptr);
  ASSERT_NE(reader, nullptr);
  ASSERT_NE(static_cast<void*>(writer), static_cast<void*>(reader));
  __atomic_store_n(&writer->health[7], 0, __ATOMIC_RELAXED);
  writer->header.generation++;
  EXPECT_EQ(__atomic_load_n(&reader->health[7], __ATOMIC_RELAXED), 0);
  EXPECT_EQ(reader->header.generation, 1u);

  std::vector<uint8_t> value(sizeof(zproxy_health_region));
  uint32_t zero = 0;
  ASSERT_EQ(bpf_map_lookup_elem(map.fd(), &zero, value.data()), 0);
  EXPECT_EQ(value[offsetof(zproxy_health_region, health) + 7], 0);
  EXPECT_EQ(value[offsetof(zproxy_health_region, health) + 8], 1);
  munmap(writer, HealthMapMmapSize());
  munmap(reader, HealthMapMmapSize());
}

TEST(HealthMap, HealthRegionMapsItAsEitherSide) {
  HealthMap map;
  std::string error;
  ASSERT_TRUE(map.Load(BpfOptions{}, &error)) << error;
  UniqueFd shared = map.ShareFd();
  ASSERT_TRUE(shared.valid());
  HealthRegion writer, reader;
  ASSERT_TRUE(HealthRegion::MapBpfMap(map.fd(), true, &writer, &error)) << error;
  ASSERT_TRUE(HealthRegion::MapShared(shared.get(), HealthBacking::kBpfMap, &reader, &error))
      << error;
  EXPECT_EQ(reader.backing(), HealthBacking::kBpfMap);
  EXPECT_FALSE(reader.writable());
  EXPECT_EQ(reader.slot_count(), HealthRegion::kDefaultSlots);
  writer.Set(42, false);
  EXPECT_FALSE(reader.Healthy(42));
  EXPECT_TRUE(reader.Healthy(41));
  EXPECT_EQ(reader.generation(), 1u);
}

TEST(HealthMap, SlotNamesAreKeptCutAndCleared) {
  HealthMap map;
  std::string error;
  ASSERT_TRUE(map.Load(BpfOptions{}, &error)) << error;
  const std::string long_name(100, 'x');
  ASSERT_TRUE(map.SetSlotName(3, "app", "10.0.0.1:80"));
  ASSERT_TRUE(map.SetSlotName(9, long_name, "10.0.0.2:80"));
  // Read back through the syscall interface, as bpftool does.
  zproxy_health_slot_name v;
  uint32_t key = 3;
  ASSERT_EQ(bpf_map_lookup_elem(map.names_fd(), &key, &v), 0);
  EXPECT_STREQ(v.cluster, "app");
  EXPECT_STREQ(v.address, "10.0.0.1:80");
  key = 9;
  ASSERT_EQ(bpf_map_lookup_elem(map.names_fd(), &key, &v), 0);
  EXPECT_EQ(std::string(v.cluster), long_name.substr(0, ZPROXY_HEALTH_NAME_LEN - 1));
  map.ClearSlotName(3);
  key = 3;
  EXPECT_NE(bpf_map_lookup_elem(map.names_fd(), &key, &v), 0);
  map.ClearSlotNames();
  key = 9;
  EXPECT_NE(bpf_map_lookup_elem(map.names_fd(), &key, &v), 0);
}

}  // namespace
}  // namespace zproxy::controlplane::bpf
