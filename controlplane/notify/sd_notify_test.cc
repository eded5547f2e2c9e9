#include "controlplane/notify/sd_notify.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/unique_fd.h"

namespace zproxy::notify {
namespace {

// Binds a datagram socket to `name` the way systemd would ("@x" = abstract).
UniqueFd Listen(const std::string& name) {
  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
  if (name[0] == '@') a.sun_path[0] = '\0';
  EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len), 0) << strerror(errno);
  return fd;
}

std::string Receive(int fd) {
  char buf[512];
  ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

TEST(SdNotify, AbstractAndPathSockets) {
  const std::string abstract = "@zproxy-sd-notify-test-" + std::to_string(getpid());
  UniqueFd a = Listen(abstract);
  std::string error;
  ASSERT_TRUE(SdNotify::ForSocket(abstract).Send("READY=1", &error)) << error;
  EXPECT_EQ(Receive(a.get()), "READY=1");

  // /tmp: TEST_TMPDIR is longer than sun_path allows.
  const std::string path = "/tmp/zp-notify-" + std::to_string(getpid());
  unlink(path.c_str());
  UniqueFd p = Listen(path);
  ASSERT_TRUE(SdNotify::ForSocket(path).Send("STOPPING=1", &error)) << error;
  EXPECT_EQ(Receive(p.get()), "STOPPING=1");
  unlink(path.c_str());
}

TEST(SdNotify, OffOrBrokenIsNeverSilent) {
  std::string error;
  EXPECT_TRUE(SdNotify().Send("READY=1", &error));  // no systemd: a no-op
  SdNotify relative = SdNotify::ForSocket("relative/path");
  EXPECT_FALSE(relative.enabled());
  EXPECT_NE(relative.note().find("ignored"), std::string::npos);
  SdNotify gone = SdNotify::ForSocket("@zproxy-nobody-listens-" + std::to_string(getpid()));
  EXPECT_FALSE(gone.Send("READY=1", &error));
  EXPECT_NE(error.find("@zproxy-nobody-listens"), std::string::npos) << error;
}

TEST(SdNotify, EnvironmentIsReadOnceAndNotInherited) {
  setenv("NOTIFY_SOCKET", "@zproxy-env-test", 1);
  setenv("WATCHDOG_USEC", "3000000", 1);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  SdNotify n = SdNotify::FromEnvironment();
  EXPECT_TRUE(n.enabled());
  EXPECT_EQ(n.watchdog().count(), 3000000);
  EXPECT_EQ(getenv("NOTIFY_SOCKET"), nullptr);
  EXPECT_EQ(getenv("WATCHDOG_USEC"), nullptr);
  // Another process's watchdog is not ours.
  setenv("WATCHDOG_USEC", "3000000", 1);
  setenv("WATCHDOG_PID", "1", 1);
  EXPECT_EQ(SdNotify::FromEnvironment().watchdog().count(), 0);
}

}  // namespace
}  // namespace zproxy::notify
