#include "dataplane/proxy/passthrough_mode.h"

#include "gtest/gtest.h"

namespace zproxy::dataplane {
namespace {

TEST(PassthroughMode, FallsBackAlongTheChain) {
  PassthroughCaps all{3, 4, 5, true};
  PassthroughCaps no_bpf{-1, -1, -1, true};
  PassthroughCaps nothing{-1, -1, -1, false};
  std::string why;
  EXPECT_EQ(ResolvePassMode(zproxy::v1::SOCKMAP, all, &why), PassMode::kSockmap);
  EXPECT_EQ(why, "");
  EXPECT_EQ(ResolvePassMode(zproxy::v1::SOCKMAP, no_bpf, &why), PassMode::kSplice);
  EXPECT_NE(why.find("no SOCKHASH"), std::string::npos);
  EXPECT_EQ(ResolvePassMode(zproxy::v1::SOCKMAP, nothing, &why), PassMode::kCopy);
  EXPECT_NE(why.find("IORING_OP_SPLICE"), std::string::npos);
  EXPECT_EQ(ResolvePassMode(zproxy::v1::SPLICE, nothing, &why), PassMode::kCopy);
  EXPECT_EQ(ResolvePassMode(zproxy::v1::COPY, all, &why), PassMode::kCopy);
  EXPECT_EQ(ResolvePassMode(zproxy::v1::AUTO, all, &why), kAutoMode);
  EXPECT_EQ(ResolvePassMode(zproxy::v1::PASSTHROUGH_MODE_UNSPECIFIED, all, &why), kAutoMode);
  EXPECT_EQ(ResolvePassMode(zproxy::v1::AUTO, nothing, &why), PassMode::kCopy);
  // auto without BPF: the faster of the rest as measured (copy), not splice.
  EXPECT_EQ(ResolvePassMode(zproxy::v1::AUTO, no_bpf, &why), kAutoFallback);
  EXPECT_NE(why.find("no SOCKHASH"), std::string::npos);
}

TEST(PassthroughMode, TunnelsOfHttpListeners) {
  PassthroughCaps all{3, 4, 5, true, true};
  PassthroughCaps no_install{3, 4, 5, true, false};
  PassthroughCaps no_bpf{-1, -1, -1, true, true};
  std::string why;
  EXPECT_EQ(ResolveTunnelMode(zproxy::v1::AUTO, false, all, &why), kAutoMode);
  EXPECT_EQ(why, "");
  EXPECT_EQ(ResolveTunnelMode(zproxy::v1::SPLICE, false, all, &why), PassMode::kSplice);
  EXPECT_EQ(ResolveTunnelMode(zproxy::v1::SOCKMAP, false, no_bpf, &why), PassMode::kSplice);
  EXPECT_NE(why.find("no SOCKHASH"), std::string::npos);
  // Without FIXED_FD_INSTALL a direct descriptor stays in the ring: copy, whatever was asked.
  EXPECT_EQ(ResolveTunnelMode(zproxy::v1::SOCKMAP, false, no_install, &why), PassMode::kCopy);
  EXPECT_NE(why.find("FIXED_FD_INSTALL"), std::string::npos);
  EXPECT_EQ(ResolveTunnelMode(zproxy::v1::SPLICE, true, all, &why), PassMode::kCopy);
  EXPECT_NE(why.find("TLS listener"), std::string::npos);
  EXPECT_EQ(ResolveTunnelMode(zproxy::v1::COPY, false, all, &why), PassMode::kCopy);
  EXPECT_EQ(why, "");
}

}  // namespace
}  // namespace zproxy::dataplane
