#include "controlplane/dataplane_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace zproxy::controlplane {

bool SpawnDataplane(const std::string& binary, DataplaneProcess* out, std::string* error) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    *error = std::string("socketpair: ") + std::strerror(errno);
    return false;
  }
  UniqueFd parent_end(sv[0]), child_end(sv[1]);
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    *error = std::string("pipe2: ") + std::strerror(errno);
    return false;
  }
  UniqueFd exec_err_read(p[0]), exec_err_write(p[1]);

  // Everything the child needs is prepared before fork: after it, only async-signal-safe
  // calls are allowed.
  std::string fd_arg = std::to_string(child_end.get());
  const char* argv[] = {binary.c_str(), "--control-fd", fd_arg.c_str(), nullptr};

  pid_t pid = fork();
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // zproxyd blocks signals for its signalfd
    signal(SIGPIPE, SIG_DFL);                  // ignored dispositions survive exec
    // No PR_SET_PDEATHSIG: if zproxyd dies the data plane keeps serving its last snapshot
    // and redials zproxyd; a new zproxyd takes over from it (controlplane/sync/orphan.h).
    int err = 0;
    if (fcntl(child_end.get(), F_SETFD, 0) != 0) {
      err = errno;
    } else {
      execv(binary.c_str(), const_cast<char* const*>(argv));
      err = errno;
    }
    ssize_t ignored = write(exec_err_write.get(), &err, sizeof(err));
    (void)ignored;
    _exit(127);
  }
  exec_err_write.reset();
  child_end.reset();
  int child_errno = 0;
  ssize_t n;
  do {
    n = read(exec_err_read.get(), &child_errno, sizeof(child_errno));
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    int status;
    waitpid(pid, &status, 0);
    *error = "cannot execute " + binary + ": " + std::strerror(child_errno);
    return false;
  }
  out->pid = pid;
  out->control = std::move(parent_end);
  return true;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    std::string s = "killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
                    strsignal(WTERMSIG(status)) + ")";
    if (WCOREDUMP(status)) s += ", core dumped";
    return s;
  }
  return "changed state (wait status " + std::to_string(status) + ")";
}

}  // namespace zproxy::controlplane
