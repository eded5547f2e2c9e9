// The health map is the health region: header and all-healthy slots from the start, and a
// write through one mapping is visible through another (as zproxyd writes and the data
// plane reads) and through the syscall interface bpftool uses.
#include "controlplane/bpf/health_map.h"

#include <bpf/bpf.h>
#include <sys/mman.h>

#include <vector>

#include "common/health_region.h"
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

}  // namespace
}  // namespace zproxy::controlplane::bpf
