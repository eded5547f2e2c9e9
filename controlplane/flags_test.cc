#include "controlplane/flags.h"

#include <gtest/gtest.h>

#include <vector>

namespace zproxy::controlplane {
namespace {

bool Parse(std::vector<const char*> args, Flags* f, std::string* error) {
  args.insert(args.begin(), "zproxyd");
  return ParseFlags(static_cast<int>(args.size()), const_cast<char**>(args.data()), f, error);
}

TEST(Flags, AllForms) {
  Flags f;
  std::string error;
  ASSERT_TRUE(Parse({"--config", "a.yaml", "--check", "--dataplane=/bin/dp"}, &f, &error)) << error;
  EXPECT_EQ(f.config_path, "a.yaml");
  EXPECT_TRUE(f.check);
  EXPECT_EQ(f.dataplane_path, "/bin/dp");
}

TEST(Flags, Errors) {
  Flags f;
  std::string error;
  EXPECT_FALSE(Parse({}, &f, &error));
  EXPECT_EQ(error, "--config is required");
  EXPECT_FALSE(Parse({"--config"}, &f, &error));
  EXPECT_EQ(error, "--config needs a value");
  EXPECT_FALSE(Parse({"--config=a", "--bogus"}, &f, &error));
  EXPECT_EQ(error, "unknown argument \"--bogus\"");
}

}  // namespace
}  // namespace zproxy::controlplane
