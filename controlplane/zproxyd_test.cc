// zproxyd end to end, with controlplane/testing/fake_dataplane standing in for the data
// plane: real processes, real sockets on loopback.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

const char* kZproxyd = "controlplane/zproxyd";
const char* kFake = "controlplane/testing/fake_dataplane";

std::string TmpPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/" + name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

std::string Config(uint16_t port) {
  return "listeners:\n"
         "  - name: web\n"
         "    address: 127.0.0.1:" +
         std::to_string(port) +
         "\n"
         "    routes: [ { match: { prefix: / }, cluster: app } ]\n"
         "clusters:\n"
         "  - { name: app, endpoints: [ 127.0.0.1:1 ] }\n"
         "workers: 2\n"
         "drain_timeout_ms: 1000\n";
}

// Starts zproxyd with stderr (its log) going to `log`.
pid_t Start(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(kZproxyd));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(kZproxyd, argv.data());
    _exit(127);
  }
  return pid;
}

// Waits for `pid` to exit; returns its exit status, or -1 on timeout.
int WaitExit(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    std::this_thread::sleep_for(20ms);
  }
  return -1;
}

int RunToExit(const std::vector<std::string>& args, const std::string& log) {
  pid_t pid = Start(args, log);
  int code = WaitExit(pid, 20s);
  if (code == -1) kill(pid, SIGKILL);
  return code;
}

bool WaitForLog(const std::string& log, const std::string& needle, int count = 1) {
  for (int i = 0; i < 500; ++i) {
    std::string text = ReadFile(log);
    int found = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
      ++found;
    }
    if (found >= count) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

std::vector<pid_t> DataplanePids(const std::string& log) {
  std::vector<pid_t> pids;
  std::string text = ReadFile(log);
  std::regex re("data plane started: pid ([0-9]+)");
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
    pids.push_back(std::stoi((*it)[1]));
  }
  return pids;
}

// Connects (the part that must never be refused) and sends a request; the response is read
// later by Finish, so connections can be opened while no data plane is running.
int Connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  const char req[] = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";
  if (write(fd, req, sizeof(req) - 1) < 0) return -errno;
  return fd;
}

std::string Finish(int fd) {
  std::string out;
  char buf[1024];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  return out;
}

TEST(Zproxyd, CheckExampleIsOk) {
  std::string log = TmpPath("check_ok.log");
  EXPECT_EQ(RunToExit({"--config", "examples/zproxy.yaml", "--check"}, log), 0);
  EXPECT_EQ(ReadFile(log), "configuration examples/zproxy.yaml is ok\n");
}

TEST(Zproxyd, CheckReportsEveryError) {
  std::string cfg = TmpPath("bad.yaml");
  WriteFile(cfg, "listeners:\n  - nme: web\nworkers: lots\n");
  std::string log = TmpPath("check_bad.log");
  EXPECT_EQ(RunToExit({"--config", cfg, "--check"}, log), 1);
  std::string out = ReadFile(log);
  EXPECT_NE(out.find(cfg + ":2:5: listeners[0]: unknown field \"nme\""), std::string::npos) << out;
  EXPECT_NE(out.find(cfg + ":3:10: workers: expected an unsigned integer, got \"lots\""),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("has 2 errors"), std::string::npos) << out;
}

TEST(Zproxyd, UsageErrorExits2) { EXPECT_EQ(RunToExit({"--check"}, TmpPath("usage.log")), 2); }

TEST(Zproxyd, ServesRestartsWithoutRefusingAndStops) {
  const uint16_t port = FreePort();
  std::string cfg = TmpPath("run.yaml");
  WriteFile(cfg, Config(port));
  std::string log = TmpPath("run.log");
  pid_t zproxyd = Start({"--config", cfg, "--dataplane", kFake}, log);
  ASSERT_TRUE(WaitForLog(log, "data plane started: pid")) << ReadFile(log);
  std::string text = ReadFile(log);
  EXPECT_NE(text.find("workers: 2"), std::string::npos) << text;
  EXPECT_NE(text.find("listener \"web\" on 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << text;

  int fd = Connect(port);
  ASSERT_GE(fd, 0) << strerror(-fd);
  std::vector<pid_t> pids = DataplanePids(log);
  ASSERT_EQ(pids.size(), 1u);
  std::string first = Finish(fd);
  ASSERT_EQ(first.rfind("HTTP/1.1 200 OK", 0), 0u) << first;
  EXPECT_NE(first.find("pid=" + std::to_string(pids[0])), std::string::npos) << first;

  // Kill the data plane and connect during the restart gap: the listen sockets stay in
  // zproxyd, so every connect succeeds and is answered by the next data plane.
  ASSERT_EQ(kill(pids[0], SIGKILL), 0);
  std::vector<int> during;
  for (int i = 0; i < 10; ++i) {
    int c = Connect(port);
    ASSERT_GE(c, 0) << "connection " << i << " during restart: " << strerror(-c);
    during.push_back(c);
    std::this_thread::sleep_for(15ms);
  }
  ASSERT_TRUE(WaitForLog(log, "data plane started: pid", 2)) << ReadFile(log);
  pids = DataplanePids(log);
  ASSERT_EQ(pids.size(), 2u);
  EXPECT_NE(pids[1], pids[0]);
  for (int c : during) {
    std::string r = Finish(c);
    EXPECT_EQ(r.rfind("HTTP/1.1 200 OK", 0), 0u) << r;
    EXPECT_NE(r.find("pid=" + std::to_string(pids[1])), std::string::npos) << r;
  }
  text = ReadFile(log);
  EXPECT_NE(text.find("killed by signal 9"), std::string::npos) << text;
  EXPECT_NE(text.find("restart #1 in 100 ms"), std::string::npos) << text;

  // SIGHUP re-reads the file (unchanged here), and is not fatal.
  ASSERT_EQ(kill(zproxyd, SIGHUP), 0);
  ASSERT_TRUE(WaitForLog(log, "is unchanged; config version")) << ReadFile(log);

  ASSERT_EQ(kill(zproxyd, SIGTERM), 0);
  EXPECT_EQ(WaitExit(zproxyd, 10s), 0) << ReadFile(log);
  EXPECT_EQ(kill(pids[1], 0), -1);  // the data plane went with it
  // And the port is closed now.
  int after = Connect(port);
  EXPECT_EQ(after, -ECONNREFUSED);
}

TEST(Zproxyd, BindConflictNamesListener) {
  int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  socklen_t len = sizeof(a);
  getsockname(holder, reinterpret_cast<sockaddr*>(&a), &len);
  std::string cfg = TmpPath("conflict.yaml");
  WriteFile(cfg, Config(ntohs(a.sin_port)));
  std::string log = TmpPath("conflict.log");
  EXPECT_EQ(RunToExit({"--config", cfg, "--dataplane", kFake}, log), 1);
  std::string text = ReadFile(log);
  EXPECT_NE(text.find("listener \"web\": cannot bind 127.0.0.1:" +
                      std::to_string(ntohs(a.sin_port)) + ": Address already in use"),
            std::string::npos)
      << text;
  close(holder);
}

TEST(Zproxyd, DataplaneThatExitsAtOnceIsAFailedStart) {
  std::string cfg = TmpPath("false.yaml");
  WriteFile(cfg, Config(FreePort()));
  std::string log = TmpPath("false.log");
  EXPECT_EQ(RunToExit({"--config", cfg, "--dataplane", "/bin/false"}, log), 1);
  EXPECT_NE(ReadFile(log).find("data plane failed to start"), std::string::npos) << ReadFile(log);
}

TEST(Zproxyd, MissingDataplaneBinary) {
  std::string cfg = TmpPath("missing.yaml");
  WriteFile(cfg, Config(FreePort()));
  std::string log = TmpPath("missing.log");
  EXPECT_EQ(RunToExit({"--config", cfg, "--dataplane", "/nonexistent/dp"}, log), 1);
  EXPECT_NE(ReadFile(log).find("--dataplane /nonexistent/dp: No such file or directory"),
            std::string::npos)
      << ReadFile(log);
}

}  // namespace
