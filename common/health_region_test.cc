#include "common/health_region.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "gtest/gtest.h"

namespace zproxy {
namespace {

HealthRegion MakeRegion(uint32_t slots) {
  HealthRegion r;
  std::string error;
  EXPECT_TRUE(HealthRegion::Create(slots, &r, &error)) << error;
  return r;
}

TEST(HealthRegionTest, CreateStartsHealthyWithHeader) {
  HealthRegion r = MakeRegion(16);
  ASSERT_TRUE(r.valid());
  EXPECT_TRUE(r.writable());
  EXPECT_EQ(r.slot_count(), 16u);
  for (uint32_t i = 0; i < 16; i++) EXPECT_TRUE(r.Healthy(i));
  EXPECT_EQ(r.Byte(16), nullptr);
  EXPECT_EQ(r.generation(), 0u);
}

TEST(HealthRegionTest, WritesVisibleInSecondMapping) {
  HealthRegion w = MakeRegion(8);
  HealthRegion r;
  std::string error;
  ASSERT_TRUE(HealthRegion::MapReadOnly(w.fd(), &r, &error)) << error;
  EXPECT_FALSE(r.writable());
  EXPECT_EQ(r.slot_count(), 8u);
  const uint8_t* b = r.Byte(3);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(*b, 1);
  w.Set(3, false);
  EXPECT_EQ(__atomic_load_n(b, __ATOMIC_RELAXED), 0);
  EXPECT_FALSE(r.Healthy(3));
  EXPECT_EQ(r.generation(), 1u);
  w.Set(3, false);  // no change: generation stays
  EXPECT_EQ(r.generation(), 1u);
  w.Set(3, true);
  EXPECT_EQ(*b, 1);
  EXPECT_EQ(r.generation(), 2u);
}

TEST(HealthRegionTest, MappingSurvivesClosingTheFd) {
  HealthRegion w = MakeRegion(4);
  int dup_fd = dup(w.fd());
  HealthRegion r;
  std::string error;
  ASSERT_TRUE(HealthRegion::MapReadOnly(dup_fd, &r, &error)) << error;
  close(dup_fd);
  w.Set(1, false);
  EXPECT_FALSE(r.Healthy(1));
}

TEST(HealthRegionTest, SealedAgainstWritableMappingsAndResize) {
  HealthRegion w = MakeRegion(4);
  size_t size = sizeof(HealthRegionHeader) + 4;
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, w.fd(), 0);
  EXPECT_EQ(p, MAP_FAILED) << "a second writable mapping must be refused";
  if (p != MAP_FAILED) munmap(p, size);
  EXPECT_NE(ftruncate(w.fd(), 0), 0);
  EXPECT_NE(ftruncate(w.fd(), 1 << 20), 0);
  char byte = 0;
  EXPECT_LT(pwrite(w.fd(), &byte, 1, sizeof(HealthRegionHeader)), 0);
  EXPECT_TRUE(w.Healthy(0));
}

TEST(HealthRegionTest, ReadOnlyMappingCannotBeWritten) {
  HealthRegion w = MakeRegion(4);
  HealthRegion r;
  std::string error;
  ASSERT_TRUE(HealthRegion::MapReadOnly(w.fd(), &r, &error)) << error;
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL);  // a sanitizer's handler would turn the fault into exit(1)
    *const_cast<volatile uint8_t*>(r.Byte(0)) = 0;
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the write in the child did not fault";
  EXPECT_EQ(WTERMSIG(status), SIGSEGV);
  EXPECT_TRUE(w.Healthy(0));
}

TEST(HealthRegionTest, MapRejectsForeignFd) {
  int fd = memfd_create("not-health", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 4096), 0);
  HealthRegion r;
  std::string error;
  EXPECT_FALSE(HealthRegion::MapReadOnly(fd, &r, &error));
  EXPECT_NE(error.find("bad header"), std::string::npos) << error;
  EXPECT_FALSE(r.valid());
  close(fd);
}

TEST(HealthSlotAllocatorTest, StableKeysAndLateReuse) {
  HealthSlotAllocator a(3);
  bool fresh = false;
  EXPECT_EQ(a.Assign("app", "10.0.0.1:80", &fresh), 0u);
  EXPECT_TRUE(fresh);
  EXPECT_EQ(a.Assign("app", "10.0.0.2:80"), 1u);
  EXPECT_EQ(a.Assign("app", "10.0.0.1:80", &fresh), 0u);
  EXPECT_FALSE(fresh);
  EXPECT_EQ(a.Assign("db", "10.0.0.1:80"), 2u);            // same address, other cluster: own slot
  EXPECT_EQ(a.Assign("db", "10.0.0.9:80"), std::nullopt);  // full

  // A config change drops app/10.0.0.1: its slot is freed, the others keep theirs.
  auto freed = a.Retain({{"app", "10.0.0.2:80"}, {"db", "10.0.0.1:80"}});
  EXPECT_EQ(freed, std::vector<uint32_t>{0});
  EXPECT_EQ(a.Find("app", "10.0.0.2:80"), 1u);
  EXPECT_EQ(a.Find("app", "10.0.0.1:80"), std::nullopt);
  EXPECT_EQ(a.Assign("db", "10.0.0.9:80", &fresh), 0u);
  EXPECT_TRUE(fresh);
}

TEST(HealthSlotAllocatorTest, NeverUsedSlotsBeforeRecycled) {
  HealthSlotAllocator a(4);
  EXPECT_EQ(a.Assign("c", "a:1"), 0u);
  a.Retain({});
  // Slot 0 was freed, but 1 has never been used: an old snapshot may still read 0.
  EXPECT_EQ(a.Assign("c", "b:1"), 1u);
}

TEST(HealthSlotAllocatorTest, ClaimKeepsGivenSlotsAndSkippedOnesStayFree) {
  HealthSlotAllocator a(8);
  EXPECT_TRUE(a.Claim("c", "x", 5));
  EXPECT_TRUE(a.Claim("c", "x", 5));   // idempotent
  EXPECT_FALSE(a.Claim("c", "y", 5));  // taken
  EXPECT_FALSE(a.Claim("c", "y", 8));  // out of range
  EXPECT_TRUE(a.Claim("c", "y", 2));
  // The slots skipped over (0, 1, 3, 4) come first, then 6, 7.
  std::vector<uint32_t> next;
  for (const char* k : {"a", "b", "d", "e", "f", "g"}) next.push_back(*a.Assign("c", k));
  EXPECT_EQ(next, (std::vector<uint32_t>{6, 7, 0, 1, 3, 4}));
}

TEST(HealthSlotTableTest, SlotFor) {
  HealthSlotTable t;
  t.Add("app", "127.0.0.1:3000", 7);
  EXPECT_EQ(t.SlotFor("app", "127.0.0.1:3000"), 7u);
  EXPECT_EQ(t.SlotFor("app", "127.0.0.1:3001"), std::nullopt);
  EXPECT_EQ(t.SlotFor("other", "127.0.0.1:3000"), std::nullopt);
}

}  // namespace
}  // namespace zproxy
