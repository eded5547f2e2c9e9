#include "controlplane/health/probe.h"

#include "gtest/gtest.h"

namespace zproxy::health {
namespace {

TEST(ParseStatusLineTest, Valid) {
  EXPECT_EQ(ParseStatusLine("HTTP/1.1 200 OK"), 200);
  EXPECT_EQ(ParseStatusLine("HTTP/1.0 503 Service Unavailable"), 503);
  EXPECT_EQ(ParseStatusLine("HTTP/1.1 204"), 204);
  EXPECT_EQ(ParseStatusLine("HTTP/1.1 404 "), 404);
}

TEST(ParseStatusLineTest, Invalid) {
  EXPECT_EQ(ParseStatusLine(""), -1);
  EXPECT_EQ(ParseStatusLine("HTTP/2 200 OK"), -1);
  EXPECT_EQ(ParseStatusLine("HTTP/1.1 20 OK"), -1);
  EXPECT_EQ(ParseStatusLine("HTTP/1.1 2000 OK"), -1);
  EXPECT_EQ(ParseStatusLine("SSH-2.0-OpenSSH_9.2"), -1);
  EXPECT_EQ(ParseStatusLine("HTTP/1.x 200 OK"), -1);
}

TEST(StatusExpectedTest, DefaultIs200To399) {
  EXPECT_FALSE(StatusExpected(199, {}));
  EXPECT_TRUE(StatusExpected(200, {}));
  EXPECT_TRUE(StatusExpected(301, {}));
  EXPECT_TRUE(StatusExpected(399, {}));
  EXPECT_FALSE(StatusExpected(400, {}));
  EXPECT_FALSE(StatusExpected(500, {}));
}

TEST(StatusExpectedTest, ExplicitList) {
  EXPECT_TRUE(StatusExpected(503, {200, 503}));
  EXPECT_FALSE(StatusExpected(301, {200, 503}));
}

}  // namespace
}  // namespace zproxy::health
