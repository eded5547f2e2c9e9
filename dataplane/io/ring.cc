#include "dataplane/io/ring.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace zproxy::io {
namespace {

int ReadIoUringDisabledSysctl() {
  FILE* f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
  if (f == nullptr) return -1;
  int v = -1;
  if (fscanf(f, "%d", &v) != 1) v = -1;
  fclose(f);
  return v;
}

bool SeccompFiltered() {
  FILE* f = fopen("/proc/self/status", "r");
  if (f == nullptr) return false;
  char line[256];
  bool filtered = false;
  while (fgets(line, sizeof(line), f) != nullptr) {
    int mode = 0;
    if (sscanf(line, "Seccomp: %d", &mode) == 1) filtered = (mode == 2);
  }
  fclose(f);
  return filtered;
}

}  // namespace

std::string DescribeRingSetupError(int err) {
  std::string msg = std::string("io_uring_setup failed: ") + strerror(err) + ". ";
  int disabled = ReadIoUringDisabledSysctl();
  bool seccomp = SeccompFiltered();
  if (err == EPERM && disabled == 2) {
    msg +=
        "kernel.io_uring_disabled=2 forbids io_uring for every process; set "
        "`sysctl kernel.io_uring_disabled=0`.";
  } else if (err == EPERM && disabled == 1) {
    msg +=
        "kernel.io_uring_disabled=1 allows io_uring only for CAP_SYS_ADMIN or the group "
        "in kernel.io_uring_group; set `sysctl kernel.io_uring_disabled=0` or run with that "
        "group.";
  } else if ((err == EPERM || err == ENOSYS) && seccomp) {
    msg +=
        "A seccomp filter blocks io_uring (Docker since 2023 and containerd 2.0 do by "
        "default); run the container with a seccomp profile that allows io_uring_setup, "
        "io_uring_enter and io_uring_register: zproxy ships one, deploy/seccomp/zproxy.json "
        "(the runtime default plus exactly these three; e.g. podman/docker run "
        "--security-opt seccomp=zproxy.json, or Kubernetes seccompProfile type Localhost).";
  } else if (err == ENOSYS) {
    msg +=
        "The kernel was built without io_uring (CONFIG_IO_URING); use a kernel >= 6.1 "
        "with io_uring enabled.";
  } else if (err == ENOMEM) {
    msg +=
        "Not enough locked memory for the rings; lower io_uring.sq_depth or raise "
        "RLIMIT_MEMLOCK.";
  } else if (err == EINVAL) {
    msg += "The kernel rejected the ring parameters; it is probably older than 6.1.";
  }
  return msg;
}

Ring::~Ring() {
  if (initialized_) io_uring_queue_exit(&ring_);
}

bool Ring::Init(const RingOptions& options, std::string* error) {
  // Try the most capable setup first and step down: each flag is an optimisation, not a
  // requirement. SQPOLL excludes DEFER_TASKRUN.
  struct Attempt {
    unsigned flags;
  };
  unsigned cq_flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  Attempt attempts[4];
  int n = 0;
  if (options.sqpoll) {
    attempts[n++] = {cq_flags | IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER};
    attempts[n++] = {cq_flags | IORING_SETUP_SQPOLL};
  }
  attempts[n++] = {cq_flags | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
  attempts[n++] = {cq_flags | IORING_SETUP_COOP_TASKRUN};
  int last_err = 0;
  for (int i = 0; i < n; i++) {
    io_uring_params p{};
    p.flags = attempts[i].flags;
    p.cq_entries = options.sq_depth * 4;
    if (p.flags & IORING_SETUP_SQPOLL) {
      p.sq_thread_idle = options.sqpoll_idle_ms;
      if (options.sqpoll_cpu >= 0) {
        p.flags |= IORING_SETUP_SQ_AFF;
        p.sq_thread_cpu = static_cast<unsigned>(options.sqpoll_cpu);
      }
    }
    int rc = io_uring_queue_init_params(options.sq_depth, &ring_, &p);
    if (rc == 0) {
      initialized_ = true;
      features_.single_issuer = p.flags & IORING_SETUP_SINGLE_ISSUER;
      features_.defer_taskrun = p.flags & IORING_SETUP_DEFER_TASKRUN;
      features_.sqpoll = p.flags & IORING_SETUP_SQPOLL;
      break;
    }
    last_err = -rc;
    // Permission problems will not go away with other flags.
    if (last_err == EPERM || last_err == ENOSYS) break;
  }
  if (!initialized_) {
    *error = DescribeRingSetupError(last_err);
    return false;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  if (probe != nullptr) {
    features_.send_zc = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
    features_.uring_cmd_sock = io_uring_opcode_supported(probe, IORING_OP_URING_CMD);
    features_.splice = io_uring_opcode_supported(probe, IORING_OP_SPLICE) &&
                       io_uring_opcode_supported(probe, IORING_OP_POLL_ADD);
    features_.fixed_fd_install = io_uring_opcode_supported(probe, kOpFixedFdInstall);
    bool recv = io_uring_opcode_supported(probe, IORING_OP_RECV);
    features_.recv_multishot = recv;  // multishot recv needs 6.0+; Init fails below on older
    features_.accept_multishot = io_uring_opcode_supported(probe, IORING_OP_ACCEPT);
    io_uring_free_probe(probe);
  }
  // Accepted sockets are direct descriptors, so the table is required. Its size counts
  // against RLIMIT_NOFILE (EMFILE beyond it): the caller sizes it from the limit.
  int rc = io_uring_register_files_sparse(&ring_, options.max_files);
  if (rc != 0) {
    *error = "registering a sparse file table of " + std::to_string(options.max_files) +
             " entries failed: " + strerror(-rc) +
             (rc == -EMFILE ? " (raise RLIMIT_NOFILE, e.g. LimitNOFILE= in systemd)" : "");
    return false;
  }
  features_.registered_files = true;
  return true;
}

io_uring_sqe* Ring::Sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

}  // namespace zproxy::io
