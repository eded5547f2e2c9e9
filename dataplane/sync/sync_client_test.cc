// The sync client when the process has no free descriptor (upstream sockets can use them
// all up): dialing zproxyd fails and is retried, and the process lives. gRPC 1.51 aborts
// the process if it has to build its event engine then (SyncClient::Prepare).
#include "dataplane/sync/sync_client.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "dataplane/config_applier.h"

namespace zproxy::dataplane {
namespace {

using namespace std::chrono_literals;

// RLIMIT_NOFILE's soft limit at the lowest free descriptor: the next socket(), eventfd()
// or epoll_create() gets EMFILE. Restored when it goes out of scope.
class NoFreeDescriptor {
 public:
  NoFreeDescriptor() {
    getrlimit(RLIMIT_NOFILE, &old_);
    int lowest = dup(0);
    close(lowest);
    rlimit tight = old_;
    tight.rlim_cur = static_cast<rlim_t>(lowest);
    setrlimit(RLIMIT_NOFILE, &tight);
  }
  ~NoFreeDescriptor() { setrlimit(RLIMIT_NOFILE, &old_); }

 private:
  rlimit old_{};
};

TEST(SyncClient, DialsWithoutAFreeDescriptorAndLives) {
  ConfigApplier applier({}, std::make_shared<Snapshot>(), nullptr);
  SyncClient::Options options;
  // Nothing listens there: with descriptors, a dial fails on connect; without, on socket().
  options.address = "unix-abstract:zproxy-sync-client-test-" + std::to_string(getpid());
  options.pid = getpid();
  options.min_backoff = 10ms;
  options.max_backoff = 20ms;
  SyncClient client(options, &applier);
  client.Prepare();  // as the data plane does before its workers serve
  {
    NoFreeDescriptor full;
    client.Start();
    std::this_thread::sleep_for(300ms);  // a dozen dials, each out of descriptors
    EXPECT_FALSE(client.connected());
    client.Stop();
  }
}

}  // namespace
}  // namespace zproxy::dataplane
