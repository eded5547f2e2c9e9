// LD_PRELOAD shim used by bench/http_bench.py for zproxy ONLY while this bug exists:
// dataplane/io/ring.h asks io_uring_register_files_sparse() for 65536 slots, the kernel
// refuses any table larger than RLIMIT_NOFILE with EMFILE, the failure is ignored, and
// every multishot accept_direct then fails with ENFILE. On these machines the hard
// RLIMIT_NOFILE is 20000 and can't be raised (no CAP_SYS_RESOURCE). The shim caps the
// requested size to the soft limit; when zproxy asks for <= RLIMIT_NOFILE it is a no-op.
// liburing is linked dynamically (bazel/system: -luring), so the call can be interposed.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <sys/resource.h>

struct io_uring;

int io_uring_register_files_sparse(struct io_uring *ring, unsigned nr) {
  static int (*real)(struct io_uring *, unsigned);
  if (!real) real = (int (*)(struct io_uring *, unsigned))dlsym(RTLD_NEXT, "io_uring_register_files_sparse");
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && nr > rl.rlim_cur) {
    fprintf(stderr, "uring_files_shim: io_uring_register_files_sparse(%u) capped to RLIMIT_NOFILE %lu\n",
            nr, (unsigned long)rl.rlim_cur);
    nr = (unsigned)rl.rlim_cur;
  }
  return real(ring, nr);
}
