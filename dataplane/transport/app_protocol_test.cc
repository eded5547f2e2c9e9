#include "dataplane/transport/app_protocol.h"

#include <gtest/gtest.h>

#include <string>

namespace zproxy::dataplane::transport {
namespace {

TEST(AppProtocolTest, MapsAlpnIds) {
  EXPECT_EQ(AppProtocolOf(""), AppProtocol::kNone);
  EXPECT_EQ(AppProtocolOf("http/1.1"), AppProtocol::kHttp11);
  EXPECT_EQ(AppProtocolOf("h2"), AppProtocol::kHttp2);
}

TEST(AppProtocolTest, ExactBytesOnly) {
  EXPECT_EQ(AppProtocolOf("HTTP/1.1"), AppProtocol::kOther);
  EXPECT_EQ(AppProtocolOf("http/1.0"), AppProtocol::kOther);
  EXPECT_EQ(AppProtocolOf("h2c"), AppProtocol::kOther);
  EXPECT_EQ(AppProtocolOf("h3"), AppProtocol::kOther);
  EXPECT_EQ(AppProtocolOf(std::string("h2\0", 3)), AppProtocol::kOther);
}

TEST(AppProtocolTest, Names) {
  EXPECT_EQ(AppProtocolName(AppProtocol::kNone), "none");
  EXPECT_EQ(AppProtocolName(AppProtocol::kHttp11), "http/1.1");
  EXPECT_EQ(AppProtocolName(AppProtocol::kHttp2), "h2");
  EXPECT_EQ(AppProtocolName(AppProtocol::kOther), "other");
}

// A name maps back to its protocol (the debug output can be read back).
TEST(AppProtocolTest, NamesRoundTrip) {
  for (AppProtocol p : {AppProtocol::kHttp11, AppProtocol::kHttp2}) {
    EXPECT_EQ(AppProtocolOf(AppProtocolName(p)), p);
  }
}

}  // namespace
}  // namespace zproxy::dataplane::transport
