#include "dataplane/proxy/request_id.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace zproxy::proxy {
namespace {

TEST(RequestId, Uuid4FormatAndUnique) {
  RequestIdGenerator gen;
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    char buf[RequestIdGenerator::kLength];
    std::string id(gen.Next(buf));
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[8], '-');
    EXPECT_EQ(id[13], '-');
    EXPECT_EQ(id[14], '4') << id;
    EXPECT_TRUE(id[19] == '8' || id[19] == '9' || id[19] == 'a' || id[19] == 'b') << id;
    EXPECT_TRUE(seen.insert(id).second);
  }
  RequestIdGenerator other;
  char buf[RequestIdGenerator::kLength];
  EXPECT_EQ(seen.count(std::string(other.Next(buf))), 0u);
}

}  // namespace
}  // namespace zproxy::proxy
