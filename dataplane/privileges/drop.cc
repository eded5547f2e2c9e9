#include "dataplane/privileges/drop.h"

#include <dirent.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace zproxy::dataplane::privileges {
namespace {

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

// Our threads, from /proc/self/task; -1 if unreadable. The kernel's io_uring threads
// (iou-sqp-* for SQPOLL, iou-wrk-* for io-wq) are listed there too but are not counted:
// they take the credentials of their ring's creator, not their own. They are told apart by
// PF_IO_WORKER in the stat flags, set when the kernel creates them; their "iou-" name is
// set only once they first run, so a name check races with a freshly created SQPOLL thread.
int ThreadCount() {
  constexpr unsigned long kPfIoWorker = 0x10;  // include/linux/sched.h
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char path[sizeof("/proc/self/task//stat") + sizeof(e->d_name)], stat[512] = {};
    snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
    unsigned long flags = 0;
    if (FILE* f = fopen(path, "r")) {
      size_t len = fread(stat, 1, sizeof(stat) - 1, f);
      stat[len] = '\0';
      fclose(f);
      // Fields after the ")" closing comm: state ppid pgrp session tty_nr tpgid flags.
      if (const char* p = strrchr(stat, ')')) {
        char state;
        int ppid, pgrp, session, tty, tpgid;
        if (sscanf(p + 1, " %c %d %d %d %d %d %lu", &state, &ppid, &pgrp, &session, &tty, &tpgid,
                   &flags) != 7) {
          flags = 0;
        }
      }
    }
    if ((flags & kPfIoWorker) == 0) n++;
  }
  closedir(d);
  return n;
}

// The highest capability number this kernel knows (newer kernels add capabilities; a
// fixed list would leave the new ones in the bounding set).
int LastCap() {
  FILE* f = fopen("/proc/sys/kernel/cap_last_cap", "r");
  int last = -1;
  if (f != nullptr) {
    if (fscanf(f, "%d", &last) != 1) last = -1;
    fclose(f);
  }
  return last >= 0 ? last : 63;
}

// True if the permitted set is not empty (capget failing counts as holding some).
bool HoldsAnyCapability() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) return true;
  for (const auto& d : data) {
    if (d.permitted != 0) return true;
  }
  return false;
}

bool ClearCapabilitySets(std::string* error) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capset, &header, data) != 0) {
    *error = Errno("capset (clearing effective, permitted, inheritable)");
    return false;
  }
  return true;
}

bool AnyCapabilityLeft(int last_cap, bool check_bounding, std::string* which) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (syscall(SYS_capget, &header, data) != 0) {
    *which = Errno("capget");
    return true;
  }
  for (const auto& d : data) {
    if (d.effective != 0 || d.permitted != 0 || d.inheritable != 0) {
      *which = "effective/permitted/inheritable not empty";
      return true;
    }
  }
  for (int c = 0; c <= last_cap; c++) {
    if (check_bounding && prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1) {
      *which = "capability " + std::to_string(c) + " still in the bounding set";
      return true;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == 1) {
      *which = "capability " + std::to_string(c) + " still ambient";
      return true;
    }
  }
  return false;
}

struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
};

bool LookUpUser(const std::string& name, Account* out, std::string* error) {
  std::vector<char> buf(16384);
  passwd pw;
  passwd* found = nullptr;
  const int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    *error = "dataplane_user \"" + name +
             "\": " + (rc != 0 ? std::string(std::strerror(rc)) : "no such user");
    return false;
  }
  out->uid = pw.pw_uid;
  out->gid = pw.pw_gid;
  return true;
}

// Supplementary groups, gid, then uid (each step needs the capability the next one
// removes). Leaving uid 0 clears the permitted and effective sets (no SECBIT_KEEP_CAPS).
bool SwitchUser(const std::string& name, const Account& a, std::string* error) {
  // Raw syscalls act on the calling thread only (glibc's wrappers would signal every
  // thread): each thread drops its own credentials (see Drop).
  if (syscall(SYS_setgroups, 1, &a.gid) != 0) return *error = Errno("setgroups for " + name), false;
  if (syscall(SYS_setresgid, a.gid, a.gid, a.gid) != 0) {
    return *error = Errno("setresgid for " + name), false;
  }
  if (syscall(SYS_setresuid, a.uid, a.uid, a.uid) != 0) {
    return *error = Errno("setresuid for " + name), false;
  }
  // Paranoia: getting root back must be impossible now.
  if (a.uid != 0 && syscall(SYS_setresuid, 0, 0, 0) == 0) {
    *error = "setuid(0) still succeeds after switching to " + name;
    return false;
  }
  return true;
}

}  // namespace

bool Drop(const Options& options, Outcome* out, std::string* error) {
  if (options.keep) {
    out->state = "kept";
    out->summary =
        "privileges: KEPT (dataplane_keep_privileges: true); the data plane runs with every "
        "capability zproxyd started it with";
    return true;
  }
  const int threads = ThreadCount();
  if (!options.is_worker && threads != 1 + options.dropped_threads) {
    *error = "privilege drop: the process has " + std::to_string(threads) +
             " threads; it must run before any thread starts (capabilities are per thread)";
    return false;
  }
  Account account;
  if (!options.user.empty() && !LookUpUser(options.user, &account, error)) return false;

  const int last_cap = LastCap();
  // The bounding set first: dropping needs CAP_SETPCAP, which the later steps remove.
  // A data plane started without any capability (zproxyd run as a normal user) cannot
  // empty it, and need not: with NO_NEW_PRIVS no execve can grant a capability again.
  const bool holds_none = !HoldsAnyCapability();
  bool bounding_kept = false;
  for (int c = 0; c <= last_cap; c++) {
    if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) != 1) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) == 0) continue;
    if (errno == EPERM && holds_none) {
      bounding_kept = true;
      break;
    }
    *error = Errno("prctl(PR_CAPBSET_DROP, " + std::to_string(c) + ")");
    return false;
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) {
    *error = Errno("prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
    return false;
  }
  if (!options.user.empty() && !SwitchUser(options.user, account, error)) return false;
  if (!ClearCapabilitySets(error)) return false;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    *error = Errno("prctl(PR_SET_NO_NEW_PRIVS)");
    return false;
  }
  // Dumpability decides who may pidfd_getfd(2) our fds (a restarted zproxyd adopts this
  // data plane that way, controlplane/sync/adopt_sockets.h): a caller with the same uid
  // passes only if we are dumpable; one with CAP_SYS_PTRACE passes either way.
  //  - uid 0 (default): stay dumpable, so a root zproxyd WITHOUT CAP_SYS_PTRACE (Docker's
  //    default capability set) can still adopt us. Dropping capabilities keeps the flag,
  //    but a data plane binary with file capabilities starts non-dumpable: set it.
  //  - another user: the kernel made us non-dumpable at setresuid, and so we stay:
  //    dumpable, every other process of that user could ptrace us and read the TLS
  //    private keys from memory. zproxyd (another uid anyway) adopts with CAP_SYS_PTRACE.
  if (options.user.empty() && prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0) {
    *error = Errno("prctl(PR_SET_DUMPABLE, 1)");
    return false;
  }
  std::string left;
  if (AnyCapabilityLeft(last_cap, !bounding_kept, &left)) {
    *error = "privilege drop incomplete: " + left;
    return false;
  }
  out->state = "dropped";
  out->summary =
      "privileges: dropped every capability (effective, permitted, inheritable, ambient, " +
      (bounding_kept ? std::string("bounding set kept: started without CAP_SETPCAP")
                     : "bounding set 0.." + std::to_string(last_cap)) +
      "), no_new_privs=1, running as " +
      (options.user.empty() ? "uid " + std::to_string(getuid()) + " (no dataplane_user)"
                            : options.user + " (uid " + std::to_string(account.uid) + ", gid " +
                                  std::to_string(account.gid) + ")") +
      ", dumpable=" + std::to_string(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
  return true;
}

}  // namespace zproxy::dataplane::privileges
