// Starting one zproxy-dataplane process: fork + exec with `--control-fd N`, where N is the
// child's end of a fresh SOCK_SEQPACKET socketpair (the only fd it inherits on purpose).
#pragma once

#include <sys/types.h>

#include <string>

#include "common/unique_fd.h"

namespace zproxy::controlplane {

struct DataplaneProcess {
  pid_t pid = -1;
  UniqueFd control;  // zproxyd's end of the control socket
};

// Returns false with a message when the socketpair, fork or exec fails (exec errors are
// reported through a close-on-exec pipe, so "no such file" is an error here, not a child
// exiting 127). The child gets the default signal mask and dispositions, and SIGTERM if
// zproxyd dies (PR_SET_PDEATHSIG), so it never outlives its supervisor unnoticed.
bool SpawnDataplane(const std::string& binary, DataplaneProcess* out, std::string* error);

// "exited with status 3", "killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int status);

}  // namespace zproxy::controlplane
