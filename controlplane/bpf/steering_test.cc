// Steering for real: two SO_REUSEPORT listeners ("workers" 0 and 1 on CPUs 0 and 1), a
// client thread pinned to CPU k connects, and the connection must land on listener k.
#include "controlplane/bpf/steering.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "controlplane/bpf/test_util.h"
#include "gtest/gtest.h"

namespace zproxy::controlplane::bpf {
namespace {

using testing::LocalPort;
using testing::ReuseportListener;

bool TwoCpus() { return sysconf(_SC_NPROCESSORS_ONLN) >= 2; }

// Connects from a thread pinned to `cpu`; returns the index of the listener that has it.
int LandsOn(const std::vector<UniqueFd>& listeners, int cpu) {
  uint16_t port = LocalPort(listeners[0].get());
  UniqueFd client;
  std::thread t([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);  // this thread only
    client.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
  });
  t.join();
  std::vector<pollfd> pfds;
  for (const auto& l : listeners) pfds.push_back({l.get(), POLLIN, 0});
  if (poll(pfds.data(), pfds.size(), 2000) <= 0) return -1;
  int landed = -1, count = 0;
  for (size_t i = 0; i < pfds.size(); i++) {
    if (pfds[i].revents & POLLIN) {
      UniqueFd s(accept4(listeners[i].get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (s.valid()) {
        landed = static_cast<int>(i);
        count++;
      }
    }
  }
  return count == 1 ? landed : -2;
}

std::vector<UniqueFd> Group(std::vector<int>* fds) {
  std::vector<UniqueFd> ls;
  ls.push_back(ReuseportListener(0));
  ls.push_back(ReuseportListener(LocalPort(ls[0].get())));
  for (const auto& l : ls) fds->push_back(l.get());
  return ls;
}

void ExpectSteered(const std::vector<UniqueFd>& ls) {
  for (int round = 0; round < 5; round++) {
    for (int cpu = 0; cpu < 2; cpu++) {
      EXPECT_EQ(LandsOn(ls, cpu), cpu) << "client on CPU " << cpu << ", round " << round;
    }
  }
}

TEST(Steering, EbpfLandsOnTheWorkerOfTheClientsCpu) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  std::vector<int> fds;
  auto ls = Group(&fds);
  BpfOptions opts;
  opts.pin_dir = testing::TestPinDir("steer");
  SteeringResult r = AttachSteering(fds, {0, 1}, opts);
  ASSERT_EQ(r.mode, SteeringMode::kEbpf) << r.Describe();
  ExpectSteered(ls);
  r.ebpf.reset();  // unpins
  testing::RemoveDir(opts.pin_dir);
}

TEST(Steering, EbpfFollowsTheWorkerCpus) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  std::vector<int> fds;
  auto ls = Group(&fds);
  // Worker 0 on CPU 1, worker 1 on CPU 0: a client on CPU k lands on listener 1-k.
  SteeringResult r = AttachSteering(fds, {1, 0}, BpfOptions{});
  ASSERT_EQ(r.mode, SteeringMode::kEbpf) << r.Describe();
  EXPECT_EQ(LandsOn(ls, 0), 1);
  EXPECT_EQ(LandsOn(ls, 1), 0);
}

TEST(Steering, EbpfEmptySlotFallsBackToTheKernel) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  std::vector<int> fds;
  auto ls = Group(&fds);
  SteeringResult r = AttachSteering(fds, {0, 1}, BpfOptions{});
  ASSERT_EQ(r.mode, SteeringMode::kEbpf) << r.Describe();
  uint32_t one = 1;
  ASSERT_EQ(bpf_map_delete_elem(r.ebpf->sockarray_fd(), &one), 0);
  // Still accepted somewhere (the kernel's hash), never refused.
  for (int i = 0; i < 5; i++) EXPECT_GE(LandsOn(ls, 1), 0);
}

TEST(Steering, HashPolicySpreadsAndAccepts) {
  std::vector<int> fds;
  auto ls = Group(&fds);
  BpfOptions opts;
  opts.policy = SteerPolicy::kHash;
  SteeringResult r = AttachSteering(fds, {0, 1}, opts);
  ASSERT_EQ(r.mode, SteeringMode::kEbpf) << r.Describe();
  EXPECT_EQ(r.Describe(), "steering: eBPF sk_reuseport program zproxy_steer (by 4-tuple hash)");
  int seen[2] = {0, 0};
  for (int i = 0; i < 40; i++) {
    int k = LandsOn(ls, 0);
    ASSERT_GE(k, 0);
    seen[k]++;
  }
  // 40 different source ports: both workers get some.
  EXPECT_GT(seen[0], 0);
  EXPECT_GT(seen[1], 0);
}

TEST(Steering, HashPolicyWithoutEbpfUsesTheKernelsHashNotCbpf) {
  // CBPF can only steer by CPU, which is not the policy asked for.
  std::vector<int> fds;
  auto ls = Group(&fds);
  BpfOptions opts;
  opts.policy = SteerPolicy::kHash;
  opts.disable_ebpf = true;
  SteeringResult r = AttachSteering(fds, {0, 1}, opts);
  EXPECT_EQ(r.mode, SteeringMode::kReuseport);
  EXPECT_EQ(r.Describe(),
            "eBPF steering unavailable (disabled): using the kernel's reuseport hash");
  for (int i = 0; i < 4; i++) EXPECT_GE(LandsOn(ls, 0), 0);
}

TEST(Steering, CbpfFallbackLandsOnTheWorkerOfTheClientsCpu) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  std::vector<int> fds;
  auto ls = Group(&fds);
  BpfOptions opts;
  opts.disable_ebpf = true;
  SteeringResult r = AttachSteering(fds, {0, 1}, opts);
  ASSERT_EQ(r.mode, SteeringMode::kCbpf);
  EXPECT_EQ(r.Describe(), "eBPF steering unavailable (disabled): using CBPF");
  ExpectSteered(ls);
}

TEST(Steering, PlainReuseportStillAccepts) {
  std::vector<int> fds;
  auto ls = Group(&fds);
  BpfOptions opts;
  opts.disable_ebpf = opts.disable_cbpf = true;
  SteeringResult r = AttachSteering(fds, {0, 1}, opts);
  EXPECT_EQ(r.mode, SteeringMode::kReuseport);
  EXPECT_NE(r.Describe().find("using the kernel's reuseport hash"), std::string::npos);
  for (int i = 0; i < 4; i++) EXPECT_GE(LandsOn(ls, 0), 0);
}

TEST(Steering, WithoutCapBpfFallsBackToCbpf) {
  if (!TwoCpus()) GTEST_SKIP() << "needs 2 CPUs";
  // In a child without any capability: bpf() fails, CBPF needs none.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    struct {
      uint32_t version;
      int pid;
    } hdr{0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
    uint32_t data[6] = {0, 0, 0, 0, 0, 0};
    if (syscall(SYS_capset, &hdr, data) != 0) _exit(10);
    std::vector<int> fds;
    auto ls = Group(&fds);
    SteeringResult r = AttachSteering(fds, {0, 1}, BpfOptions{});
    if (r.mode != SteeringMode::kCbpf) _exit(11);
    if (r.Describe().find("Operation not permitted") == std::string::npos) _exit(12);
    for (int cpu = 0; cpu < 2; cpu++) {
      if (LandsOn(ls, cpu) != cpu) _exit(13);
    }
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace zproxy::controlplane::bpf
