// Bulk throughput of one TLS connection over loopback: userspace BoringSSL records vs kTLS.
// Meant for the ktls-vm (the host kernel has no kTLS); the VM's CPU is emulated, so only the
// ratios between modes in one run mean anything.
//
//   tools/ktls-vm-test --bench [--mb=N] [--runs=N]
//
// Modes (the server sends, the client receives; 16 KiB writes):
//   userspace  SSL_write -> SSL_read on both ends (what the data plane does without kTLS)
//   ktls-tx    server sends plaintext with send() on kTLS, client decrypts in BoringSSL
//   ktls       kTLS on both ends: send() -> recv(), all record crypto in the kernel
//   ktls-sendfile  as ktls, but the server sends from a memfd with sendfile(): the payload
//              never enters userspace (what kTLS makes possible for TLS at all)
// Printed per suite and mode: median MB/s over the runs, and CPU time per byte of the
// sending and receiving threads (user + system, CLOCK_THREAD_CPUTIME_ID).
#include <errno.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "dataplane/ktls/ktls.h"
#include "dataplane/ktls/testing/tls_peers.h"

namespace zproxy::ktls {
namespace {

using testing::Endpoint;
using testing::TlsParams;

enum class Mode { kUserspace, kKtlsTx, kKtlsBoth, kKtlsSendfile };
const char* ModeName(Mode m) {
  switch (m) {
    case Mode::kUserspace:
      return "userspace";
    case Mode::kKtlsTx:
      return "ktls-tx";
    case Mode::kKtlsBoth:
      return "ktls";
    case Mode::kKtlsSendfile:
      return "ktls-sendfile";
  }
  return "?";
}

struct Suite {
  const char* name;
  TlsParams params;
};

double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double WallSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Sample {
  bool ok = false;
  std::string error;
  double mb_per_s = 0;
  double sender_ns_per_byte = 0;
  double receiver_ns_per_byte = 0;
};

Sample RunOnce(const Suite& suite, Mode mode, size_t total) {
  Sample s;
  auto server_ctx = testing::NewServerContext(suite.params);
  auto client_ctx = testing::NewClientContext(suite.params);
  testing::TcpPair pair = testing::LoopbackPair();
  if (!server_ctx || !client_ctx || !pair.client.valid()) {
    s.error = "setup failed";
    return s;
  }
  const std::vector<uint8_t> chunk = testing::RandomBytes(16 << 10);
  UniqueFd file;
  if (mode == Mode::kKtlsSendfile) {  // `total` bytes in a memfd (page cache, like a file)
    file.reset(::memfd_create("ktls_bench", MFD_CLOEXEC));
    for (size_t off = 0; off < total; off += chunk.size()) {
      if (::write(file.get(), chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size())) {
        s.error = "memfd write failed";
        return s;
      }
    }
  }
  std::string server_error;
  double send_cpu = 0, send_start = 0;
  std::thread server([&] {
    auto ssl = testing::Accept(server_ctx.get(), pair.server.get(), &server_error);
    if (!ssl) return;
    bool ktls = false;
    if (mode != Mode::kUserspace) {
      const Result r = TryInstall(pair.server.get(), ssl.get());
      if (!r.installed()) {
        server_error = std::string("server TryInstall: ") + OutcomeName(r.outcome);
        ::shutdown(pair.server.get(), SHUT_RDWR);
        return;
      }
      ktls = true;
    }
    Endpoint ep{pair.server.get(), ssl.get(), ktls};
    uint8_t go;  // the client says when it is ready (after its own TryInstall)
    if (!ep.ReadExact(&go, 1, &server_error)) return;
    send_start = WallSeconds();
    const double cpu0 = ThreadCpuSeconds();
    if (mode == Mode::kKtlsSendfile) {
      off_t offset = 0;
      while (static_cast<size_t>(offset) < total) {
        const ssize_t n = ::sendfile(pair.server.get(), file.get(), &offset, total - offset);
        if (n <= 0) {
          server_error = std::string("sendfile: ") + strerror(errno);
          return;
        }
      }
    } else {
      for (size_t sent = 0; sent < total; sent += chunk.size()) {
        if (!ep.WriteAll(chunk.data(), chunk.size(), &server_error)) return;
      }
    }
    send_cpu = ThreadCpuSeconds() - cpu0;
  });

  std::string error;
  auto ssl = testing::Connect(client_ctx.get(), pair.client.get(), &error);
  bool ktls = false;
  if (ssl && (mode == Mode::kKtlsBoth || mode == Mode::kKtlsSendfile)) {
    const Result r = TryInstall(pair.client.get(), ssl.get());
    if (!r.installed()) error = std::string("client TryInstall: ") + OutcomeName(r.outcome);
    ktls = r.installed();
  }
  double recv_cpu = 0, end = 0;
  if (ssl && error.empty()) {
    Endpoint ep{pair.client.get(), ssl.get(), ktls};
    const uint8_t go = 1;
    std::vector<uint8_t> buf(256 << 10);
    if (ep.WriteAll(&go, 1, &error)) {
      const double cpu0 = ThreadCpuSeconds();
      size_t got = 0;
      while (got < total && error.empty()) {
        const size_t want = std::min(buf.size(), total - got);
        // ReadExact of a whole buffer: fine for throughput, the sizes line up with 16 KiB.
        if (ep.ReadExact(buf.data(), want, &error)) got += want;
      }
      recv_cpu = ThreadCpuSeconds() - cpu0;
      end = WallSeconds();
    }
  }
  if (!error.empty()) ::shutdown(pair.client.get(), SHUT_RDWR);
  server.join();
  if (!error.empty() || !server_error.empty()) {
    s.error = error.empty() ? server_error : error;
    return s;
  }
  s.ok = true;
  s.mb_per_s = static_cast<double>(total) / (end - send_start) / 1e6;
  s.sender_ns_per_byte = send_cpu * 1e9 / static_cast<double>(total);
  s.receiver_ns_per_byte = recv_cpu * 1e9 / static_cast<double>(total);
  return s;
}

int Main(int argc, char** argv) {
  size_t mb = 32;
  int runs = 3;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--mb=", 5) == 0) {
      mb = std::strtoul(argv[i] + 5, nullptr, 10);
    } else if (std::strncmp(argv[i], "--runs=", 7) == 0) {
      runs = std::atoi(argv[i] + 7);
    } else {
      std::fprintf(stderr, "usage: %s [--mb=32] [--runs=3]\n", argv[0]);
      return 2;
    }
  }
  if (mb == 0 || runs <= 0) return 2;
  utsname u{};
  ::uname(&u);
  const bool have_ktls = Detect() == Support::kPresent;
  std::printf("kernel %s, kTLS %s, %zu MiB per run, median of %d runs, 16 KiB writes\n", u.release,
              have_ktls ? "present" : "absent", mb, runs);
  std::printf("%-16s %-13s %9s %8s %16s %18s   %s\n", "suite", "mode", "MB/s", "x user",
              "sender ns/byte", "receiver ns/byte", "(MB/s min-max)");
  const Suite suites[] = {
      {"tls13-aes128gcm", {TLS1_3_VERSION, TLS1_3_VERSION, nullptr}},
      {"tls12-aes256gcm", {TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384"}},
      {"tls12-chacha20", {TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305"}},
  };
  // Rounds outermost: every mode sees the same background load (the VM shares its host).
  std::vector<Mode> modes = {Mode::kUserspace};
  if (have_ktls) modes.insert(modes.end(), {Mode::kKtlsTx, Mode::kKtlsBoth, Mode::kKtlsSendfile});
  const size_t n_suites = sizeof(suites) / sizeof(suites[0]);
  std::vector<std::vector<Sample>> samples(n_suites * modes.size());
  int failures = 0;
  for (int r = 0; r < runs; ++r) {
    for (size_t si = 0; si < n_suites; ++si) {
      for (size_t mi = 0; mi < modes.size(); ++mi) {
        Sample s = RunOnce(suites[si], modes[mi], mb << 20);
        if (!s.ok) {
          std::printf("%-16s %-13s FAILED: %s\n", suites[si].name, ModeName(modes[mi]),
                      s.error.c_str());
          ++failures;
          continue;
        }
        samples[si * modes.size() + mi].push_back(s);
      }
    }
  }
  auto median_of = [](std::vector<Sample> v, double Sample::*field) {
    std::sort(v.begin(), v.end(),
              [&](const Sample& a, const Sample& b) { return a.*field < b.*field; });
    return v[v.size() / 2].*field;
  };
  for (size_t si = 0; si < n_suites; ++si) {
    double userspace_mbps = 0;
    for (size_t mi = 0; mi < modes.size(); ++mi) {
      const std::vector<Sample>& v = samples[si * modes.size() + mi];
      if (v.empty()) continue;
      const double mbps = median_of(v, &Sample::mb_per_s);
      if (modes[mi] == Mode::kUserspace) userspace_mbps = mbps;
      double lo = v[0].mb_per_s, hi = v[0].mb_per_s;
      for (const Sample& x : v) {
        lo = std::min(lo, x.mb_per_s);
        hi = std::max(hi, x.mb_per_s);
      }
      std::printf("%-16s %-13s %9.1f %7.2fx %16.2f %18.2f   (%.1f-%.1f)\n", suites[si].name,
                  ModeName(modes[mi]), mbps, userspace_mbps > 0 ? mbps / userspace_mbps : 0.0,
                  median_of(v, &Sample::sender_ns_per_byte),
                  median_of(v, &Sample::receiver_ns_per_byte), lo, hi);
    }
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace zproxy::ktls

int main(int argc, char** argv) { return zproxy::ktls::Main(argc, argv); }
