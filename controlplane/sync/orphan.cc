#include "controlplane/sync/orphan.h"

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "common/log.h"

namespace zproxy::sync {

bool IsDataplaneProcess(pid_t pid) {
  if (pid <= 0) return false;
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm.rfind("zproxy-datapla", 0) == 0;  // comm is cut at 15 characters
}

std::vector<pid_t> FindOrphans(const SessionRegistry& sessions, std::chrono::milliseconds timeout) {
  sessions.WaitFor([](pid_t) { return true; }, timeout);
  std::vector<pid_t> orphans;
  for (pid_t pid : sessions.Connected()) {
    if (std::find(orphans.begin(), orphans.end(), pid) != orphans.end()) continue;
    if (!IsDataplaneProcess(pid)) {
      ZLOG_WARN("sync: pid %d said Hello but is not a zproxy data plane; ignoring it", pid);
      continue;
    }
    orphans.push_back(pid);
  }
  return orphans;
}

OrphanRetirer::OrphanRetirer(const SessionRegistry& sessions, std::vector<pid_t> orphans,
                             std::function<pid_t()> current_pid,
                             std::chrono::milliseconds timeout) {
  if (orphans.empty()) return;
  thread_ = std::thread(
      [&sessions, orphans = std::move(orphans), current_pid = std::move(current_pid), timeout] {
        const pid_t ours = sessions.WaitFor(
            [&](pid_t pid) {
              const pid_t cur = current_pid();
              return cur > 0 && pid == cur;
            },
            timeout);
        for (pid_t orphan : orphans) {
          if (!IsDataplaneProcess(orphan)) continue;  // gone already
          if (ours < 0) {
            ZLOG_WARN(
                "takeover: our data plane did not connect within %lld ms; telling orphaned "
                "data plane pid %d to drain anyway",
                static_cast<long long>(timeout.count()), orphan);
          } else {
            ZLOG_INFO("takeover: data plane pid %d serves; orphaned data plane pid %d drains", ours,
                      orphan);
          }
          if (kill(orphan, SIGTERM) != 0) {
            ZLOG_WARN("takeover: SIGTERM to orphaned data plane pid %d: %s", orphan,
                      std::strerror(errno));
          }
        }
      });
}

OrphanRetirer::~OrphanRetirer() {
  if (thread_.joinable()) thread_.join();
}

}  // namespace zproxy::sync
