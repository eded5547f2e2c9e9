#!/usr/bin/python3
"""Side-by-side HTTP/1.1 proxy benchmark: zproxy vs nginx vs HAProxy (stdlib only).

Subcommands (see bench/README.md):
  http     keep-alive req/s + latency, CPU/request, Connection: close conn/s + CPU/conn,
           RSS per idle client connection; writes the generated section of RESULTS.md.
           --zproxy-baseline REV / --zproxy-baseline-bin DIR add a second zproxy build
           ("zproxy@REV") to the same run and report new / baseline ratios (before/after).
  sendzc   zproxy only: /bytes/S downloads with io_uring.send_zc_threshold 0 (never) vs 1 (always)
  profile  zproxy only: perf record of zproxy-dataplane during a keep-alive wrk run

Placement: every proxy and the common backend run on CPU 0 (taskset -c 0), wrk and the
idle-connection client on CPU 1. One worker each. Runs are interleaved per repetition.
"""
import argparse
import datetime
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

PORTS = {
    "backend": 18600,
    "zproxy": 18601,
    "nginx": 18602,
    "haproxy": 18603,
    "zproxy_baseline": 18604,       # the second zproxy build (--zproxy-baseline*)
    "zproxy_baseline_metrics": 18610,
    "zproxy_metrics": 18611,
}
PROXY_CPU = "0"
LOAD_CPU = "1"
PROXIES = ["zproxy", "nginx", "haproxy"]
ZPROXY_TARGETS = ["//controlplane:zproxyd", "//dataplane:zproxy-dataplane"]
BACKEND_TARGET = "//tests/backend:zproxy-test-backend"
ZC_NEVER = -1  # written as io_uring.send_zc_disable: true
# Copies get neutral names (and the work dir a neutral prefix) so that broad `pkill -f zproxy...`
# clean-ups of concurrently running test suites can't kill a benchmark's processes.
BIN_ALIAS = {"zproxyd": "zb-ctl", "zproxy-dataplane": "zb-dataplane", "zproxy-test-backend": "zb-backend"}
BASELINE_ALIAS = {"zproxyd": "zb-ctl-base", "zproxy-dataplane": "zb-dataplane-base"}
# Before/after check of the baseline contender: keep-alive CPU/req, CPU/new connection and
# bytes/idle connection must stay within 5% of the baseline (issue 10); req/s is reported alike.
BASELINE_TOLERANCE = 0.05
SIZES = {"4K": 4096, "16K": 16384, "64K": 65536, "256K": 262144, "1M": 1048576}


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------- processes

def nofile_limit():
    """RLIMIT_NOFILE we give every launched shell: 100000, or the hard limit if lower."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return 100000
    return min(100000, hard)


def shell_prefix(cpu):
    return ("ulimit -n 100000 2>/dev/null || ulimit -n $(ulimit -Hn); "
            "exec taskset -c %s \"$@\"" % cpu)


class Proc:
    """A process (tree) we launched in its own session, pinned to one CPU."""

    def __init__(self, name, cmd, cpu, workdir, env=None):
        self.name = name
        self.cmd = cmd
        self.logpath = os.path.join(workdir, "%s.log" % name)
        self.logf = open(self.logpath, "ab")
        self.p = subprocess.Popen(["bash", "-c", shell_prefix(cpu), "bash"] + cmd,
                                  stdout=self.logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True,
                                  env=env, cwd=workdir)
        self.pid = self.p.pid  # bash execs taskset which execs cmd: same pid

    def alive(self):
        return self.p.poll() is None

    def tree(self):
        return process_tree(self.pid)

    def log_tail(self, n=30):
        try:
            with open(self.logpath, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=8)
            except subprocess.TimeoutExpired:
                log("%s did not stop on SIGTERM, sending SIGKILL" % self.name)
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(timeout=5)
        # Children left in our session (e.g. a dataplane that outlived zproxyd).
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.logf.close()


def make_workdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)  # nginx workers run as an unprivileged user and read files here
    return d


def process_tree(root):
    children = {}
    for st in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(st) as f:
                data = f.read()
        except OSError:
            continue
        pid = int(st.split("/")[2])
        ppid = int(data.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if os.path.exists("/proc/%d" % p):
            out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids):
    """utime+stime (+cutime+cstime of reaped children) summed over the processes, in ticks.
    /proc/PID/stat of a process already aggregates all of its threads."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is state (field 3); utime=14 stime=15 cutime=16 cstime=17 (1-based)
        total += sum(int(x) for x in fields[11:15])
    return total


def cpu_ns_schedstat(pids):
    """On-CPU nanoseconds of every live thread (finer than ticks; cross-check only)."""
    total = 0
    for pid in pids:
        for ss in glob.glob("/proc/%d/task/*/schedstat" % pid):
            try:
                with open(ss) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def mem_kb(pids):
    rss = pss = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pss = None if pss == 0 else pss
    return rss, pss


def port_open(port):
    s = socket.socket()
    s.settimeout(0.3)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def http_get(port, path="/", timeout=3):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 headers={"User-Agent": "zproxy-bench"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_body(proc, port, expect, path="/", timeout=20):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and not proc.alive():
            raise BenchError("%s exited during startup:\n%s" % (proc.name, proc.log_tail()))
        try:
            status, body = http_get(port, path)
            if status == 200 and (expect is None or body == expect):
                return body
            last = "status %s body %r" % (status, body[:80])
        except Exception as e:  # noqa: BLE001 - anything means "not ready yet"
            last = repr(e)
        time.sleep(0.2)
    raise BenchError("sanity check failed on port %d%s: %s%s" % (
        port, path, last, ("\n--- %s log ---\n%s" % (proc.name, proc.log_tail())) if proc else ""))


# --------------------------------------------------------------------------- wrk

UNIT = {"us": 1.0, "ms": 1000.0, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_latency(s):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", s)
    if not m:
        raise BenchError("cannot parse wrk latency %r" % s)
    return float(m.group(1)) * UNIT[m.group(2)]


def parse_wrk(out):
    r = {"socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0}, "non2xx": 0}
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+)", out, re.M)
    if not m:
        raise BenchError("cannot parse wrk output:\n" + out)
    r["requests"] = int(m.group(1))
    m = re.search(r"^Requests/sec:\s*([\d.]+)", out, re.M)
    r["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s*%s%%\s+(\S+)" % pct, out, re.M)
        if m:
            r["p" + pct] = parse_latency(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                      (int(x) for x in m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    r["errors"] = r["non2xx"] + sum(r["socket_errors"].values())
    return r


def run_wrk(port, path, duration, conns, close=False, pids=None, backend_pids=None, label=""):
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % duration,
           "--latency", "--timeout", "5s"]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append("http://127.0.0.1:%d%s" % (port, path))
    pids = pids or []
    t0 = cpu_ticks(pids)
    n0 = cpu_ns_schedstat(pids)
    b0 = cpu_ticks(backend_pids or [])
    out = subprocess.run(["bash", "-c", "ulimit -n 100000 2>/dev/null || ulimit -n $(ulimit -Hn); "
                          "exec \"$@\"", "bash"] + cmd,
                         capture_output=True, text=True, timeout=duration + 60)
    t1 = cpu_ticks(pids)
    n1 = cpu_ns_schedstat(pids)
    b1 = cpu_ticks(backend_pids or [])
    if out.returncode != 0:
        raise BenchError("wrk failed (%d): %s %s" % (out.returncode, out.stdout, out.stderr))
    r = parse_wrk(out.stdout)
    r["cmd"] = " ".join(cmd)
    n = max(r["requests"], 1)
    if pids:
        r["cpu_us_per_req"] = (t1 - t0) * 1e6 / CLK_TCK / n
        r["cpu_us_per_req_schedstat"] = (n1 - n0) / 1e3 / n
        r["cpu_util"] = (t1 - t0) / CLK_TCK / duration
    if backend_pids:
        r["backend_cpu_us_per_req"] = (b1 - b0) * 1e6 / CLK_TCK / n
    if r["errors"]:
        log("!!! %s: wrk reported %d errors (non-2xx %d, socket %s) !!!" % (
            label, r["errors"], r["non2xx"], r["socket_errors"]))
    return r


# --------------------------------------------------------------------------- configs

def nginx_backend_conf(workdir, port):
    bytes_dir = os.path.join(workdir, "bytes")
    os.makedirs(bytes_dir, exist_ok=True)
    for n in SIZES.values():
        with open(os.path.join(bytes_dir, str(n)), "wb") as f:
            f.write(b"x" * n)
    return common_nginx_head(workdir, "backend") + """
http {
    access_log off;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_timeout 600s; keepalive_requests 100000000;
    default_type text/plain;
    server {
        listen 127.0.0.1:%d backlog=4096;
        location = / { return 200 "hello from nginx-backend\\n"; }
        location /bytes/ { alias %s/; }
    }
}
""" % (port, bytes_dir)


def common_nginx_head(workdir, tag):
    return """
worker_processes 1;
daemon off;
master_process on;
pid %(w)s/nginx-%(t)s.pid;
error_log %(w)s/nginx-%(t)s-error.log warn;
events { worker_connections 20000; use epoll; }
""" % {"w": workdir, "t": tag}


def nginx_proxy_conf(workdir, port, backend_port):
    return common_nginx_head(workdir, "proxy") + """
http {
    access_log off;
    sendfile on; tcp_nopush on; tcp_nodelay on;
    keepalive_timeout 600s; keepalive_requests 100000000;
    client_body_temp_path %(w)s/nginx-body;
    proxy_temp_path %(w)s/nginx-proxy;
    fastcgi_temp_path %(w)s/nginx-fastcgi;
    uwsgi_temp_path %(w)s/nginx-uwsgi;
    scgi_temp_path %(w)s/nginx-scgi;
    upstream backend {
        server 127.0.0.1:%(b)d;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 600s;
    }
    server {
        listen 127.0.0.1:%(p)d backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
""" % {"w": workdir, "p": port, "b": backend_port}


def haproxy_conf(port, backend_port):
    return """global
    nbthread 1
    maxconn 20000
    # RLIMIT_NOFILE may be capped below 2*maxconn here (no CAP_SYS_RESOURCE): warn, don't exit
    no strict-limits

defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-keep-alive 600s
    timeout http-request 30s

frontend fe
    bind 127.0.0.1:%d
    default_backend be

backend be
    server s1 127.0.0.1:%d
""" % (port, backend_port)


def zproxy_conf(workdir, port, backend_port, metrics_port, send_zc_threshold=None, tag=""):
    """tag: suffix for the admin socket and the bpffs pin path, so that a second zproxy build
    (the baseline) never meets the first one's socket or pinned maps."""
    io = ""
    if send_zc_threshold == ZC_NEVER:
        io = "io_uring: { send_zc_disable: true }\n"
    elif send_zc_threshold is not None:
        io = "io_uring: { send_zc_threshold: %d }\n" % send_zc_threshold
    return """# generated by bench/http_bench.py
listeners:
  - name: bench
    address: 127.0.0.1:%(p)d
    routes:
      - match: { prefix: / }
        cluster: backend
    http: { idle_timeout_ms: 600000, xff_disable: true }
clusters:
  - name: backend
    endpoints: [ 127.0.0.1:%(b)d ]
    pool_size: 64
workers: 1
%(io)smetrics_address: 127.0.0.1:%(m)d
admin_address: unix:%(w)s/zproxy%(t)s-admin.sock
bpffs_path: /sys/fs/bpf/zproxy-bench%(t)s
drain_timeout_ms: 200
""" % {"p": port, "b": backend_port, "m": metrics_port, "w": workdir, "io": io, "t": tag}


# --------------------------------------------------------------------------- build

def bazel_build(targets):
    """bazel build -c opt; copies binaries out so concurrent builds can't swap them mid-run."""
    cmd = ["bazel", "build", "-c", "opt", "--symlink_prefix=/"] + targets
    log("building: " + " ".join(cmd))
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        return None, r.stderr[-3000:]
    info = subprocess.run(["bazel", "info", "-c", "opt", "bazel-bin"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    if info.returncode != 0:
        return None, info.stderr[-2000:]
    return info.stdout.strip(), None


def prepare_binaries(args, workdir, need_zproxy, need_backend):
    bins = {}
    bindir = os.path.join(workdir, "bin")
    os.makedirs(bindir, exist_ok=True)
    targets = (ZPROXY_TARGETS if need_zproxy else []) + ([BACKEND_TARGET] if need_backend else [])
    if not targets:
        return bins, None
    if args.no_build:
        # The last `-c opt` outputs (bazel-bin may point at someone's fastbuild tree).
        info = subprocess.run(["bazel", "info", "-c", "opt", "bazel-bin"], cwd=ROOT,
                              capture_output=True, text=True, timeout=600)
        bazel_bin = info.stdout.strip() if info.returncode == 0 else os.path.join(ROOT, "bazel-bin")
        err = None
    else:
        bazel_bin, err = bazel_build(targets)
        if bazel_bin is None and need_zproxy and need_backend:
            # Maybe only one side builds; try separately so the error is precise.
            bazel_bin, err = bazel_build(ZPROXY_TARGETS)
            if bazel_bin is not None:
                b2, err = bazel_build([BACKEND_TARGET])
                if b2 is None:
                    need_backend = False
    if bazel_bin is None:
        return bins, err
    for t in targets:
        if not need_backend and t == BACKEND_TARGET:
            continue
        pkg, name = t[2:].split(":")
        src = os.path.join(bazel_bin, pkg, name)
        if not os.path.exists(src):
            return bins, "missing %s" % src
        dst = os.path.join(bindir, BIN_ALIAS[name])
        shutil.copy2(src, dst)
        bins[name] = dst
    return bins, err


def git_rev():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return r.stdout.strip() + ("+dirty" if dirty else "")


# --------------------------------------------------------------------------- baseline build

def git(*argv):
    r = subprocess.run(["git"] + list(argv), cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError("git %s: %s" % (" ".join(argv), r.stderr.strip()))
    return r.stdout.strip()


def default_baseline_cache():
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                        "zproxy-bench", "baseline")


def build_baseline(rev, cache):
    """zproxyd + zproxy-dataplane of git revision `rev`, built with `bazel build -c opt` in a
    separate source tree (`git archive` of the commit: the repository's worktree list and the
    current checkout stay untouched) with its own output base. The binaries are kept in
    cache/<sha>/bin (reused by later runs); the source tree and the output base are deleted
    after a successful build (the shared disk cache from ~/.bazelrc keeps the actions).
    Returns (bin_dir, short_sha, full_sha)."""
    sha = git("rev-parse", "--verify", "--quiet", rev + "^{commit}")
    short = git("rev-parse", "--short", sha)
    top = os.path.join(cache, sha)
    bindir = os.path.join(top, "bin")
    os.makedirs(top, exist_ok=True)
    with open(os.path.join(top, "lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)  # two runs wanting the same baseline build it once
        if all(os.access(os.path.join(bindir, n), os.X_OK) for n in ("zproxyd", "zproxy-dataplane")):
            log("baseline %s (%s): using cached binaries in %s" % (rev, short, bindir))
            return bindir, short, sha
        src = os.path.join(top, "src")
        ob = os.path.join(top, "output_base")
        if os.path.exists(src):
            shutil.rmtree(src)
        os.makedirs(src)
        log("baseline %s (%s): exporting the tree to %s" % (rev, short, src))
        arch = subprocess.Popen(["git", "archive", "--format=tar", sha], cwd=ROOT, stdout=subprocess.PIPE)
        tar = subprocess.run(["tar", "-x", "-C", src], stdin=arch.stdout, capture_output=True, text=True)
        arch.stdout.close()
        if arch.wait() != 0 or tar.returncode != 0:
            raise BenchError("git archive %s | tar -x failed: %s" % (sha, tar.stderr))
        differ = subprocess.run(["git", "diff", "--quiet", sha, "--", ".bazelrc", "WORKSPACE", "bazel/"],
                                cwd=ROOT).returncode != 0
        if differ:
            log("!!! baseline %s: .bazelrc/WORKSPACE/bazel/ differ from the current checkout; each "
                "tree is built with its own settings !!!" % short)
        # Same command as the current checkout's build (prepare_binaries); --max_idle_secs so
        # that the extra Bazel server never lingers if the shutdown below is skipped.
        startup = ["bazel", "--output_base=" + ob, "--max_idle_secs=60"]
        cmd = startup + ["build", "-c", "opt", "--symlink_prefix=/"] + ZPROXY_TARGETS
        log("baseline %s: building in %s: %s" % (short, src, " ".join(cmd)))
        expunged = False
        try:
            r = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=3600)
            if r.returncode != 0:
                raise BenchError("baseline %s did not build (tree %s, output base %s):\n%s" % (
                    short, src, ob, r.stderr[-3000:]))
            info = subprocess.run(startup + ["info", "-c", "opt", "bazel-bin"], cwd=src,
                                  capture_output=True, text=True, timeout=600)
            if info.returncode != 0:
                raise BenchError("bazel info failed for the baseline: " + info.stderr[-2000:])
            tmp = bindir + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            for t in ZPROXY_TARGETS:
                pkg, name = t[2:].split(":")
                shutil.copy2(os.path.join(info.stdout.strip(), pkg, name), os.path.join(tmp, name))
            with open(os.path.join(tmp, "REV"), "w") as f:
                f.write("%s\n%s\n" % (short, sha))
            shutil.rmtree(bindir, ignore_errors=True)
            os.rename(tmp, bindir)
            # The binaries are all we need: drop the output base (and its server) and the tree.
            expunged = subprocess.run(startup + ["clean", "--expunge"], cwd=src, capture_output=True,
                                      timeout=600).returncode == 0
            if expunged:
                shutil.rmtree(src, ignore_errors=True)
        finally:
            if not expunged:  # failed build: keep tree + output base to look at, stop the server
                subprocess.run(startup + ["shutdown"], cwd=src, capture_output=True, timeout=120)
        log("baseline %s: binaries in %s" % (short, bindir))
        return bindir, short, sha


def prepare_baseline(args, workdir):
    """The second zproxy contender, or None. Copies zproxyd + zproxy-dataplane (from
    --zproxy-baseline REV's build or --zproxy-baseline-bin DIR) into the work dir under neutral
    names, like the current build's binaries."""
    if not args.zproxy_baseline and not args.zproxy_baseline_bin:
        return None
    info = {}
    if args.zproxy_baseline:
        src, short, sha = build_baseline(args.zproxy_baseline, args.baseline_cache)
        info.update({"rev": args.zproxy_baseline, "sha": sha, "version": "zproxy git %s" % short,
                     "source": "git %s (`--zproxy-baseline %s`), built with `bazel build -c opt`" % (
                         sha, args.zproxy_baseline)})
        label = short
    else:
        src = os.path.abspath(args.zproxy_baseline_bin)
        label = os.path.basename(os.path.normpath(src))
        try:
            with open(os.path.join(src, "REV")) as f:  # written by build_baseline
                label = f.readline().strip() or label
        except OSError:
            pass
        info["source"] = "binaries from %s" % src
        info["version"] = "zproxy %s binaries from %s" % (label, src)
    label = args.zproxy_baseline_name or label
    bindir = os.path.join(workdir, "bin-baseline")
    os.makedirs(bindir, exist_ok=True)
    bins = {}
    for name in ("zproxyd", "zproxy-dataplane"):
        p = os.path.join(src, name)
        if not os.access(p, os.X_OK):
            raise BenchError("baseline binary %s missing or not executable" % p)
        dst = os.path.join(bindir, BASELINE_ALIAS[name])
        shutil.copy2(p, dst)
        bins[name] = dst
    info.update({"name": "zproxy@" + label, "bins": bins, "bin_dir": src})
    return info


def version_of(cmd, any_rc=False):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        out = (r.stdout + r.stderr).strip().splitlines()
        return out[0].strip() if (r.returncode == 0 or any_rc) and out else None
    except Exception:  # noqa: BLE001
        return None


# --------------------------------------------------------------------------- servers

class Env:
    """Backend + proxy launchers sharing one work dir."""

    def __init__(self, args, workdir, bins, baseline=None):
        self.args = args
        self.workdir = workdir
        self.bins = bins
        self.backend = None
        self.backend_kind = None
        self.backend_body = None
        self.shim_capped = False
        # zproxy builds by contender name: the current checkout's, and optionally a baseline
        # build (prepare_baseline) on its own ports, admin socket and bpffs path.
        self.zproxies = {"zproxy": {"bins": bins, "port": PORTS["zproxy"],
                                    "metrics": PORTS["zproxy_metrics"], "tag": ""}}
        if baseline:
            self.zproxies[baseline["name"]] = {
                "bins": baseline["bins"], "port": PORTS["zproxy_baseline"],
                "metrics": PORTS["zproxy_baseline_metrics"], "tag": "-base"}

    def port_of(self, name):
        return self.zproxies[name]["port"] if name in self.zproxies else PORTS[name]

    def start_backend(self, kind):
        port = PORTS["backend"]
        if kind == "zproxy":
            cmd = [self.bins["zproxy-test-backend"], "--listen", "127.0.0.1:%d" % port,
                   "--name", "bench"]
            expect = b"hello from bench\n"
        else:
            conf = os.path.join(self.workdir, "nginx-backend.conf")
            with open(conf, "w") as f:
                f.write(nginx_backend_conf(self.workdir, port))
            cmd = ["nginx", "-p", self.workdir, "-c", conf, "-e", os.path.join(self.workdir, "nginx-backend-error.log")]
            expect = b"hello from nginx-backend\n"
        self.backend = Proc("backend", cmd, PROXY_CPU, self.workdir)
        self.backend_kind = kind
        try:
            self.backend_body = wait_body(self.backend, port, expect)
            # /bytes/N must serve exactly N bytes.
            st, body = http_get(port, "/bytes/4096")
            if st != 200 or len(body) != 4096:
                raise BenchError("backend /bytes/4096 returned %d, %d bytes" % (st, len(body)))
        except BaseException:
            self.backend.stop()
            raise
        log("backend (%s) up on %d: %r" % (kind, port, self.backend_body))

    def start_proxy(self, name, send_zc_threshold=None):
        w = self.workdir
        port = self.port_of(name)
        if port_open(port):
            raise BenchError("port %d for %s is already in use" % (port, name))
        if name == "nginx":
            conf = os.path.join(w, "nginx-proxy.conf")
            with open(conf, "w") as f:
                f.write(nginx_proxy_conf(w, port, PORTS["backend"]))
            cmd = ["nginx", "-p", w, "-c", conf, "-e", os.path.join(w, "nginx-proxy-error.log")]
        elif name == "haproxy":
            conf = os.path.join(w, "haproxy.cfg")
            with open(conf, "w") as f:
                f.write(haproxy_conf(port, PORTS["backend"]))
            cmd = ["haproxy", "-db", "-f", conf]
        elif name in self.zproxies:
            z = self.zproxies[name]
            conf = os.path.join(w, "zproxy%s.yaml" % z["tag"])
            with open(conf, "w") as f:
                f.write(zproxy_conf(w, port, PORTS["backend"], z["metrics"], send_zc_threshold, tag=z["tag"]))
            cmd = [z["bins"]["zproxyd"], "--config", conf, "--dataplane", z["bins"]["zproxy-dataplane"]]
            chk = subprocess.run(cmd + ["--check"], capture_output=True, text=True, timeout=30)
            if chk.returncode != 0:
                raise BenchError("%s: zproxyd --check rejected the bench config:\n%s%s" % (
                    name, chk.stdout, chk.stderr))
        else:
            raise BenchError("unknown proxy " + name)
        env = None
        if name in self.zproxies and self.args.uring_shim:
            env = dict(os.environ, LD_PRELOAD=build_shim(w))
        p = Proc(name, cmd, PROXY_CPU, w, env=env)
        try:
            wait_body(p, port, self.backend_body, timeout=30)
        except BaseException:
            p.stop()
            raise
        if name in self.zproxies:
            self.shim_capped = self.shim_capped or "uring_files_shim:" in p.log_tail(200)
        return p


def proxy_versions(bins, names, baseline=None):
    v = {}
    if "nginx" in names:
        v["nginx"] = version_of(["nginx", "-v"])
    if "haproxy" in names:
        v["haproxy"] = version_of(["haproxy", "-v"])
    if "zproxy" in names:
        zv = version_of([bins["zproxyd"], "--version"]) if "zproxyd" in bins else None
        v["zproxy"] = "%s (git %s)" % (zv, git_rev()) if zv else "zproxy git %s" % git_rev()
    if baseline:
        v[baseline["name"]] = baseline["version"]
    v["wrk"] = version_of(["wrk", "-v"], any_rc=True)
    return v


# --------------------------------------------------------------------------- idle memory

def build_shim(workdir):
    so = os.path.join(workdir, "uring_files_shim.so")
    if not os.path.exists(so):
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", so,
                        os.path.join(BENCH_DIR, "uring_files_shim.c"), "-ldl"], check=True)
    return so


SHIM_NOTE = ("zproxy ran with `LD_PRELOAD=bench/uring_files_shim.so`, which capped "
             "`io_uring_register_files_sparse(65536)` to RLIMIT_NOFILE (20000): without it the sparse "
             "file table registration fails with EMFILE (ignored in dataplane/io/ring.cc), and every "
             "multishot accept_direct fails with ENFILE, so zproxy serves nothing on a machine whose "
             "hard RLIMIT_NOFILE is below 65536. Bug to fix in the data plane (cap max_files to "
             "RLIMIT_NOFILE, or fail/fall back loudly); the shim is a no-op once it is fixed.")


def build_idleconns(workdir):
    exe = os.path.join(workdir, "idleconns")
    subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, os.path.join(BENCH_DIR, "idleconns.c")],
                   check=True)
    return exe


def idle_memory(exe, proc, port, n, settle):
    pids = proc.tree()
    rss0, pss0 = mem_kb(pids)
    tool = subprocess.Popen(["bash", "-c", shell_prefix(LOAD_CPU), "bash", exe, "127.0.0.1",
                             str(port), str(n), "/", "256", "120"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = tool.stdout.readline().strip()
        if not line.startswith("READY"):
            tool.wait(timeout=5)
            raise BenchError("idleconns failed on %s: %s %s" % (proc.name, line, tool.stderr.read()))
        time.sleep(settle)
        pids = proc.tree()
        rss1, pss1 = mem_kb(pids)
    finally:
        try:
            rest, err = tool.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            tool.kill()
            rest, err = tool.communicate()
    closed = 0
    m = re.search(r"CLOSED (\d+)", rest or "")
    if m:
        closed = int(m.group(1))
    if closed:
        log("!!! %s closed %d of %d idle connections during the measurement !!!" % (proc.name, closed, n))
    r = {"n": n, "rss_kb_before": rss0, "rss_kb_after": rss1,
         "rss_bytes_per_conn": (rss1 - rss0) * 1024.0 / n, "closed_by_server": closed}
    if pss0 is not None and pss1 is not None:
        r.update({"pss_kb_before": pss0, "pss_kb_after": pss1,
                  "pss_bytes_per_conn": (pss1 - pss0) * 1024.0 / n})
    return r


# --------------------------------------------------------------------------- stats/report

def stat(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def fmt(x, digits=0):
    if x is None:
        return "n/a"
    if digits == 0:
        return "{:,.0f}".format(x)
    return "{:,.{d}f}".format(x, d=digits)


def fmt_stat(s, digits=0, spread=True):
    if s is None:
        return "n/a"
    if not spread or s["n"] < 2:
        return fmt(s["median"], digits)
    return "%s (%s–%s)" % (fmt(s["median"], digits), fmt(s["min"], digits), fmt(s["max"], digits))


def machine_info():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576.0)
    return {"nproc": os.cpu_count(), "kernel": os.uname().release, "cpu": cpu, "mem": mem,
            "hostname": socket.gethostname(), "loadavg": open("/proc/loadavg").read().split()[:3]}


def replace_section(path, tag, text, title):
    begin = "<!-- BEGIN GENERATED: %s (do not edit by hand; rerun the script) -->" % tag
    end = "<!-- END GENERATED: %s -->" % tag
    block = begin + "\n" + text.rstrip() + "\n" + end + "\n"
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if not old:
        old = "# zproxy benchmark results\n\nHand-written notes may go anywhere outside the generated blocks.\n\n"
    b = old.find("<!-- BEGIN GENERATED: %s " % tag)
    e = old.find(end)
    if b >= 0 and e > b:
        new = old[:b] + block + old[e + len(end):].lstrip("\n")
        if not new[b + len(block):].startswith("\n") and new[b + len(block):]:
            new = new[:b + len(block)] + "\n" + new[b + len(block):]
    else:
        new = old.rstrip("\n") + "\n\n## %s\n\n" % title + block
    with open(path, "w") as f:
        f.write(new)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def med(summary, name, key):
    s = summary.get(name, {}).get(key)
    return s["median"] if s else None


def http_report(res):
    s = res["summary"]
    lines = []
    lines.append("Command: `%s`  " % res["command"])
    lines.append("Date: %s  " % res["date"])
    m = res["machine"]
    lines.append("Machine: %s CPUs (%s), kernel %s, %s RAM, load average at start %s  " % (
        m["nproc"], m["cpu"], m["kernel"], m["mem"], " ".join(m["loadavg"])))
    lines.append("Git: %s  " % res["git"])
    if res.get("baseline"):
        lines.append("Baseline: %s = zproxy %s  " % (res["baseline"]["name"], res["baseline"]["source"]))
    lines.append("Backend: %s (`GET /` → %r)  " % (res["backend"], res["backend_body"]))
    if res["backend"] != "zproxy-test-backend":
        lines.append("**WARNING: temporary backend (nginx) — the zproxy test backend was not available.**  ")
    lines.append("Placement: proxy + backend on CPU %s (`taskset -c %s`), wrk and idleconns on CPU %s; "
                 "one worker per proxy; RLIMIT_NOFILE %d.  " % (PROXY_CPU, PROXY_CPU, LOAD_CPU, res["nofile"]))
    lines.append("Load: `wrk -t1 -c%d -d%ds --latency` (keep-alive) and the same with "
                 "`-H 'Connection: close'`; %d idle connections for memory; %d interleaved repetitions "
                 "(order per repetition: %s%s).  " % (
                     res["connections"], res["duration"], res["idle_conns"], res["reps"],
                     ", ".join(res["order"]),
                     "; zproxy and %s swap places every other repetition" % res["baseline"]["name"]
                     if res.get("baseline") and "zproxy" in res["order"] else ""))
    lines.append("Versions: " + "; ".join("%s: `%s`" % (k, v) for k, v in res["versions"].items()) + "\n")
    lines.append("Values are median (min–max) over repetitions. CPU = utime+stime of all the proxy's "
                 "processes from /proc, divided by completed requests (or connections).\n")
    hdr = ("| | keep-alive req/s | p50 µs | p99 µs | CPU µs/req | conn/s (Connection: close) "
           "| CPU µs/conn | RSS bytes/idle conn | Pss bytes/idle conn |")
    lines.append(hdr)
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name in res["order"]:
        if name not in s:
            continue
        x = s[name]
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            "backend direct" if name == "backend" else name,
            fmt_stat(x.get("ka_rps")), fmt_stat(x.get("ka_p50")), fmt_stat(x.get("ka_p99")),
            fmt_stat(x.get("ka_cpu"), 2) if name != "backend" else "—",
            fmt_stat(x.get("cl_rps")),
            fmt_stat(x.get("cl_cpu"), 2) if name != "backend" else "—",
            fmt_stat(x.get("idle_rss")) if name != "backend" else "—",
            fmt_stat(x.get("idle_pss")) if name != "backend" else "—"))
    lines.append("")
    # Secondary table: cross-checks.
    lines.append("<details><summary>Cross-checks (schedstat CPU, backend CPU, p75/p90, errors)</summary>\n")
    lines.append("| | CPU µs/req (schedstat) | CPU µs/conn (schedstat) | proxy CPU util keep-alive | "
                 "backend CPU µs/req | p75 µs | p90 µs | close p99 µs | wrk errors (all runs) |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name in res["order"]:
        if name not in s:
            continue
        x = s[name]
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt_stat(x.get("ka_cpu_ss"), 2, False), fmt_stat(x.get("cl_cpu_ss"), 2, False),
            fmt_stat(x.get("ka_util"), 2, False), fmt_stat(x.get("ka_bcpu"), 2, False),
            fmt_stat(x.get("ka_p75"), 0, False), fmt_stat(x.get("ka_p90"), 0, False),
            fmt_stat(x.get("cl_p99"), 0, False), x.get("errors", 0)))
    lines.append("\n</details>\n")

    metrics = [("keep-alive req/s", "ka_rps", "higher"), ("p50", "ka_p50", "lower"),
               ("p99", "ka_p99", "lower"), ("CPU/req", "ka_cpu", "lower"),
               ("conn/s", "cl_rps", "higher"), ("CPU/conn", "cl_cpu", "lower"),
               ("RSS/idle conn", "idle_rss", "lower")]
    if "zproxy" in s:
        if any(o in s for o in ("haproxy", "nginx", "backend")):
            lines.append("Ratios (zproxy ÷ other, medians):\n")
            lines.append("| vs | " + " | ".join(m[0] + (" (↑ better)" if m[2] == "higher" else " (↓ better)")
                                                   for m in metrics) + " |")
            lines.append("|---|" + "---|" * len(metrics))
            for other in ("haproxy", "nginx", "backend"):
                if other not in s:
                    continue
                cells = []
                for _, key, _ in metrics:
                    if other == "backend" and key not in ("ka_rps", "ka_p50", "ka_p99", "cl_rps"):
                        cells.append("—")
                        continue
                    r = ratio(med(s, "zproxy", key), med(s, other, key))
                    cells.append("%.2f×" % r if r is not None else "n/a")
                lines.append("| %s | %s |" % ("backend direct" if other == "backend" else other, " | ".join(cells)))
            lines.append("")
        lines.append("Targets (medians):\n")
        tg = [
            ("CPU per request ≤ 0.5× HAProxy", ratio(med(s, "zproxy", "ka_cpu"), med(s, "haproxy", "ka_cpu")),
             lambda r: r <= 0.5, "%.2f×"),
            ("keep-alive req/s ≥ 1.6× HAProxy", ratio(med(s, "zproxy", "ka_rps"), med(s, "haproxy", "ka_rps")),
             lambda r: r >= 1.6, "%.2f×"),
            ("CPU per new connection ≤ 0.5× HAProxy",
             ratio(med(s, "zproxy", "cl_cpu"), med(s, "haproxy", "cl_cpu")), lambda r: r <= 0.5, "%.2f×"),
            ("≤ 256 bytes RSS per idle connection", med(s, "zproxy", "idle_rss"), lambda r: r <= 256,
             "%.0f bytes"),
        ]
        res["targets"] = {}
        for label, val, ok, f in tg:
            if val is None:
                verdict = "**not measured**"
            else:
                verdict = "**met**" if ok(val) else "**MISSED**"
            res["targets"][label] = {"value": val, "met": (ok(val) if val is not None else None)}
            lines.append("- %s: %s — %s" % (label, (f % val) if val is not None else "n/a", verdict))
        lines.append("")
    if res.get("baseline"):
        lines.extend(baseline_report(res))
    if res.get("shim_capped"):
        lines.append("**Note:** " + SHIM_NOTE + "\n")
    if res.get("problems"):
        lines.append("**Problems during the run:**\n")
        for p in res["problems"]:
            lines.append("- " + p)
        lines.append("")
    lines.append("Raw per-run data: `%s`." % os.path.relpath(res["json"], ROOT))
    return "\n".join(lines)


# (label, summary key, run extractor, better direction, one of the before/after criteria)
BASELINE_METRICS = [
    ("keep-alive CPU µs/req", "ka_cpu", lambda r: r.get("keepalive", {}).get("cpu_us_per_req"), "lower", True),
    ("CPU µs/new connection", "cl_cpu", lambda r: r.get("close", {}).get("cpu_us_per_req"), "lower", True),
    ("RSS bytes/idle conn", "idle_rss", lambda r: r.get("idle", {}).get("rss_bytes_per_conn"), "lower", True),
    ("keep-alive req/s", "ka_rps", lambda r: r.get("keepalive", {}).get("rps"), "higher", False),
    ("conn/s (Connection: close)", "cl_rps", lambda r: r.get("close", {}).get("rps"), "higher", False),
    ("keep-alive p99 µs", "ka_p99", lambda r: r.get("keepalive", {}).get("p99"), "lower", False),
]


def baseline_verdict(r, better, tol=BASELINE_TOLERANCE):
    """'within ±5%', 'better' (more than 5% better) or 'WORSE' (more than 5% worse)."""
    if r is None:
        return "not measured"
    if abs(r - 1.0) <= tol + 1e-12:
        return "within ±%.0f%%" % (tol * 100)
    improved = r < 1.0 if better == "lower" else r > 1.0
    return ("better by %.1f%%" if improved else "**WORSE by %.1f%%**") % (abs(r - 1.0) * 100)


def baseline_report(res):
    """Before/after block: current build ("zproxy") ÷ baseline build ("zproxy@REV")."""
    s, b = res["summary"], res["baseline"]["name"]
    L = ["Before/after: **zproxy** (this checkout, git %s) ÷ **%s** (%s), medians; same backend, "
         "load generator, placement and repetitions, the two builds alternating A-B, B-A, ... per "
         "repetition. Tolerance ±%.0f%%; the issue's criteria are marked ✱.\n" % (
             res["git"], b, res["baseline"]["source"], BASELINE_TOLERANCE * 100)]
    check = {}
    if "zproxy" not in s or b not in s:
        L.append("(zproxy or %s was not measured: no before/after ratios.)\n" % b)
        res["baseline_check"] = check
        return L
    L.append("| metric | zproxy | %s | new ÷ baseline | per-repetition ratios (min–max) | verdict |" % b)
    L.append("|---|---|---|---|---|---|")
    runs = [r for r in res["runs"] if "error" not in r]
    for label, key, get, better, gated in BASELINE_METRICS:
        new, old = med(s, "zproxy", key), med(s, b, key)
        r = ratio(new, old)
        paired = []
        for rep in sorted({x["rep"] for x in runs}):
            a = [get(x) for x in runs if x["rep"] == rep and x["proxy"] == "zproxy"]
            o = [get(x) for x in runs if x["rep"] == rep and x["proxy"] == b]
            if a and o:
                pr = ratio(a[0], o[0])
                if pr is not None:
                    paired.append(pr)
        verdict = baseline_verdict(r, better)
        check[key] = {"label": label, "new": new, "baseline": old, "ratio": r, "paired": paired,
                      "verdict": verdict.strip("*"), "criterion": gated,
                      "within": None if r is None else (
                          (r <= 1 + BASELINE_TOLERANCE) if better == "lower" else (r >= 1 - BASELINE_TOLERANCE))}
        digits = 2 if key in ("ka_cpu", "cl_cpu") else 0
        L.append("| %s%s (%s better) | %s | %s | %s | %s | %s |" % (
            label, " ✱" if gated else "", "↓" if better == "lower" else "↑",
            fmt_stat(s["zproxy"].get(key), digits, False), fmt_stat(s[b].get(key), digits, False),
            "%.3f×" % r if r is not None else "n/a",
            ("%.3f–%.3f× (%d)" % (min(paired), max(paired), len(paired))) if paired else "n/a", verdict))
    L.append("")
    crit = [c for c in check.values() if c["criterion"]]
    if any(c["ratio"] is None for c in crit):
        L.append("No regression (✱ within 5%% of %s): **not fully measured**\n" % b)
    else:
        ok = all(c["within"] for c in crit)
        L.append("No regression (✱ not more than 5%% worse than %s): **%s**%s\n" % (
            b, "met" if ok else "MISSED",
            "" if res["reps"] >= 3 else " (fewer than 3 repetitions: indicative only)"))
    res["baseline_check"] = check
    return L


# --------------------------------------------------------------------------- http mode

def cmd_http(args):
    only = [p.strip() for p in args.only.split(",") if p.strip()]
    for p in only:
        if p not in PROXIES:
            raise BenchError("unknown proxy %r (choose from %s)" % (p, ",".join(PROXIES)))
    workdir = make_workdir("zb-http-")
    log("work dir " + workdir)
    need_backend = args.backend in ("auto", "zproxy")
    bins, err = prepare_binaries(args, workdir, "zproxy" in only, need_backend)
    problems = []
    if "zproxy" in only and "zproxyd" not in bins:
        raise BenchError("zproxy requested but could not be built:\n%s\n(use --only nginx,haproxy "
                         "to run without it)" % err)
    backend_kind = args.backend
    if backend_kind == "auto":
        backend_kind = "zproxy" if "zproxy-test-backend" in bins else "nginx"
        if backend_kind == "nginx":
            log("!!! zproxy-test-backend unavailable (%s); using nginx as a TEMPORARY backend !!!"
                % (err or "").strip()[-300:])
    elif backend_kind == "zproxy" and "zproxy-test-backend" not in bins:
        raise BenchError("zproxy-test-backend could not be built:\n%s" % err)
    baseline = prepare_baseline(args, workdir)
    idle_exe = build_idleconns(workdir) if args.idle_conns > 0 else None

    env = Env(args, workdir, bins, baseline)
    for name, port in PORTS.items():
        if port_open(port):
            raise BenchError("port %d (%s) is already in use" % (port, name))
    env.start_backend(backend_kind)
    versions = proxy_versions(bins, only, baseline)
    proxies = list(only)
    if baseline:
        # The baseline runs right after the current build (or first if zproxy is not measured).
        proxies.insert(proxies.index("zproxy") + 1 if "zproxy" in proxies else 0, baseline["name"])
    order = (["backend"] if not args.no_direct else []) + proxies
    runs = []
    try:
        for rep in range(1, args.reps + 1):
            rep_order = list(order)
            if baseline and "zproxy" in order and rep % 2 == 0:
                # A-B, B-A, A-B, ...: drift during a repetition doesn't favour one build.
                i, j = rep_order.index("zproxy"), rep_order.index(baseline["name"])
                rep_order[i], rep_order[j] = rep_order[j], rep_order[i]
            for slot, name in enumerate(rep_order):
                log("rep %d/%d: %s" % (rep, args.reps, name))
                run = {"rep": rep, "proxy": name, "slot": slot}
                proc = None
                try:
                    if not env.backend.alive():
                        problems.append("rep %d: the backend had died (exit status %s) before %s; restarted" % (
                            rep, env.backend.p.returncode, name))
                        log("!!! " + problems[-1])
                        env.backend.stop()
                        env.start_backend(backend_kind)
                    if name == "backend":
                        port, pids = PORTS["backend"], env.backend.tree()
                    else:
                        proc = env.start_proxy(name)
                        port, pids = env.port_of(name), proc.tree()
                        run["pids"] = pids
                    # warm-up (not measured): fills upstream pools, faults in buffers
                    run_wrk(port, "/", 2, args.connections, label=name + " warm-up")
                    bp = env.backend.tree()
                    run["keepalive"] = run_wrk(port, "/", args.duration, args.connections,
                                               pids=(proc.tree() if proc else pids), backend_pids=bp,
                                               label="%s keep-alive rep %d" % (name, rep))
                    time.sleep(1)
                    run["close"] = run_wrk(port, "/", args.duration, args.connections, close=True,
                                           pids=(proc.tree() if proc else pids), backend_pids=bp,
                                           label="%s close rep %d" % (name, rep))
                    time.sleep(2)
                    if proc and idle_exe:
                        run["idle"] = idle_memory(idle_exe, proc, port, args.idle_conns, args.settle)
                    if proc and not proc.alive():
                        raise BenchError("%s died during the run:\n%s" % (name, proc.log_tail()))
                    if not env.backend.alive():
                        raise BenchError("the backend died (exit status %s) during %s:\n%s" % (
                            env.backend.p.returncode, name, env.backend.log_tail()))
                    ka = run["keepalive"]
                    log("  %s: %.0f req/s p99 %.0fus cpu %.2fus/req | close %.0f conn/s cpu %.2fus/conn%s" % (
                        name, ka["rps"], ka.get("p99", 0), ka.get("cpu_us_per_req", 0),
                        run["close"]["rps"], run["close"].get("cpu_us_per_req", 0),
                        (" | idle %.0f B/conn" % run["idle"]["rss_bytes_per_conn"]) if "idle" in run else ""))
                except BenchError as e:
                    msg = "rep %d %s: %s" % (rep, name, str(e).splitlines()[0] if str(e) else e)
                    log("!!! " + str(e))
                    problems.append(msg)
                    run["error"] = str(e)
                    if args.strict:
                        raise
                finally:
                    if proc:
                        proc.stop()
                        time.sleep(1)
                runs.append(run)
    finally:
        env.backend.stop()

    summary = {}
    for name in order:
        rs = [r for r in runs if r["proxy"] == name]
        ka = [r.get("keepalive") for r in rs if r.get("keepalive")]
        cl = [r.get("close") for r in rs if r.get("close")]
        idle = [r.get("idle") for r in rs if r.get("idle")]
        summary[name] = {
            "ka_rps": stat([x["rps"] for x in ka]),
            "ka_p50": stat([x.get("p50") for x in ka]),
            "ka_p75": stat([x.get("p75") for x in ka]),
            "ka_p90": stat([x.get("p90") for x in ka]),
            "ka_p99": stat([x.get("p99") for x in ka]),
            "ka_cpu": stat([x.get("cpu_us_per_req") for x in ka]),
            "ka_cpu_ss": stat([x.get("cpu_us_per_req_schedstat") for x in ka]),
            "ka_util": stat([x.get("cpu_util") for x in ka]),
            "ka_bcpu": stat([x.get("backend_cpu_us_per_req") for x in ka]),
            "cl_rps": stat([x["rps"] for x in cl]),
            "cl_p99": stat([x.get("p99") for x in cl]),
            "cl_cpu": stat([x.get("cpu_us_per_req") for x in cl]),
            "cl_cpu_ss": stat([x.get("cpu_us_per_req_schedstat") for x in cl]),
            "idle_rss": stat([x["rss_bytes_per_conn"] for x in idle]),
            "idle_pss": stat([x.get("pss_bytes_per_conn") for x in idle]),
            "errors": sum(x["errors"] for x in ka + cl),
        }
        if summary[name]["errors"]:
            problems.append("%s: wrk reported %d errors (non-2xx or socket errors) — see JSON" % (
                name, summary[name]["errors"]))
    out_json = args.json or os.path.join(BENCH_DIR, "results", "http.json")
    res = {
        "command": args.command_line, "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": args.machine, "git": git_rev(), "versions": versions,
        "backend": "zproxy-test-backend" if backend_kind == "zproxy" else "nginx (temporary)",
        "backend_body": env.backend_body.decode("utf-8", "replace"),
        "nofile": nofile_limit(), "connections": args.connections, "duration": args.duration,
        "idle_conns": args.idle_conns, "reps": args.reps, "order": order,
        "runs": runs, "summary": summary, "problems": problems, "json": out_json,
        "shim_capped": env.shim_capped,
        "baseline": ({k: v for k, v in baseline.items() if k != "bins"} if baseline else None),
    }
    text = http_report(res)
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    with open(out_json, "w") as f:
        json.dump(res, f, indent=1, default=str)
    replace_section(args.out, "bench/run-http", text, "HTTP/1.1 proxy comparison (bench/run-http)")
    print(text)
    shutil.rmtree(workdir, ignore_errors=True) if not args.keep_workdir else log("kept " + workdir)
    if problems:
        log("!!! FINISHED WITH PROBLEMS:\n  " + "\n  ".join(problems))
        return 1
    return 0


# --------------------------------------------------------------------------- sendzc mode

def cmd_sendzc(args):
    sizes = [s.strip() for s in args.sizes.split(",")]
    for s in sizes:
        if s not in SIZES:
            raise BenchError("size %r not in %s" % (s, ",".join(SIZES)))
    # Proto3 can't tell an explicit 0 from "unset": controlplane/config/defaults.cc turns
    # send_zc_threshold: 0 into the default (16 KiB), so "never" is `send_zc_disable: true`.
    named = {"never": ZC_NEVER, "always": 1}
    thresholds = [named[x] if x in named else int(x) for x in args.thresholds.split(",")]
    workdir = make_workdir("zb-sendzc-")
    bins, err = prepare_binaries(args, workdir, True, args.backend in ("auto", "zproxy"))
    if "zproxyd" not in bins:
        raise BenchError("zproxy could not be built:\n%s" % err)
    kind = args.backend
    if kind == "auto":
        kind = "zproxy" if "zproxy-test-backend" in bins else "nginx"
    env = Env(args, workdir, bins)
    env.start_backend(kind)
    runs, problems = [], []
    try:
        for rep in range(1, args.reps + 1):
            for thr in thresholds:
                log("rep %d/%d: send_zc_threshold=%d" % (rep, args.reps, thr))
                proc = None
                try:
                    proc = env.start_proxy("zproxy", send_zc_threshold=thr)
                    for s in sizes:
                        path = "/bytes/%d" % SIZES[s]
                        st, body = http_get(PORTS["zproxy"], path, timeout=10)
                        if st != 200 or len(body) != SIZES[s]:
                            raise BenchError("%s: got %d, %d bytes" % (path, st, len(body)))
                        run_wrk(PORTS["zproxy"], path, 1, args.connections, label="warm-up")
                        r = run_wrk(PORTS["zproxy"], path, args.duration, args.connections,
                                    pids=proc.tree(), backend_pids=env.backend.tree(),
                                    label="sendzc thr=%d %s rep %d" % (thr, s, rep))
                        r.update({"rep": rep, "threshold": thr, "size": s, "bytes": SIZES[s]})
                        r["cpu_ns_per_kib"] = r["cpu_us_per_req"] * 1e3 / (SIZES[s] / 1024.0)
                        r["mib_per_s"] = r["rps"] * SIZES[s] / 1048576.0
                        log("  thr=%d %s: %.0f req/s %.0f MiB/s cpu %.1f ns/KiB errors %d" % (
                            thr, s, r["rps"], r["mib_per_s"], r["cpu_ns_per_kib"], r["errors"]))
                        if r["errors"]:
                            problems.append("thr=%d %s rep %d: %d wrk errors" % (thr, s, rep, r["errors"]))
                        runs.append(r)
                except BenchError as e:
                    log("!!! " + str(e))
                    problems.append("rep %d thr=%d: %s" % (rep, thr, str(e).splitlines()[0]))
                finally:
                    if proc:
                        proc.stop()
                        time.sleep(1)
    finally:
        env.backend.stop()
    lines = ["Command: `%s`  " % args.command_line,
             "Date: %s  " % datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
             "Machine: %(nproc)s CPUs (%(cpu)s), kernel %(kernel)s  " % args.machine,
             "Git: %s; backend: %s; zproxy + backend on CPU %s, wrk -t1 -c%d -d%ds on CPU %s; %d interleaved reps.\n" % (
                 git_rev(), kind, PROXY_CPU, args.connections, args.duration, LOAD_CPU, args.reps),
             "Median (min–max). Columns: send_zc_threshold = %s (A) vs %s (B). "
             "-1 = never SEND_ZC (`send_zc_disable: true`; an explicit `send_zc_threshold: 0` is replaced by "
             "the 16 KiB default, see controlplane/config/defaults.h), 1 = always (bodies ≥ 1 byte). "
             "CPU = zproxyd + zproxy-dataplane utime+stime per response byte.\n" % (
                 thresholds[0], thresholds[-1]),
             "| size | req/s A | req/s B | B ÷ A req/s | CPU ns/KiB A | CPU ns/KiB B "
             "| B ÷ A CPU/byte | p99 µs A | p99 µs B |",
             "|---|---|---|---|---|---|---|---|---|"]
    first_win = None
    for s in sizes:
        c = {}
        for thr in thresholds:
            rr = [r for r in runs if r["size"] == s and r["threshold"] == thr]
            c[thr] = {"rps": stat([r["rps"] for r in rr]), "cpu": stat([r["cpu_ns_per_kib"] for r in rr]),
                      "p99": stat([r.get("p99") for r in rr])}
        a, b = c.get(thresholds[0]), c.get(thresholds[-1])
        rr_ratio = ratio(b["rps"]["median"] if b and b["rps"] else None, a["rps"]["median"] if a and a["rps"] else None)
        cpu_ratio = ratio(b["cpu"]["median"] if b and b["cpu"] else None, a["cpu"]["median"] if a and a["cpu"] else None)
        wins = rr_ratio is not None and cpu_ratio is not None and rr_ratio >= 1.0 and cpu_ratio <= 1.0
        if wins and first_win is None:
            first_win = s
        elif not wins:
            first_win = None  # must keep winning for all larger sizes
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s, fmt_stat(a["rps"]), fmt_stat(b["rps"]), "%.2f×" % rr_ratio if rr_ratio else "n/a",
            fmt_stat(a["cpu"], 1), fmt_stat(b["cpu"], 1), "%.2f×" % cpu_ratio if cpu_ratio else "n/a",
            fmt_stat(a["p99"]), fmt_stat(b["p99"])))
    lines.append("")
    if env.shim_capped:
        lines.append("**Note:** " + SHIM_NOTE + "\n")
    if first_win:
        lines.append("SEND_ZC wins (req/s ≥ and CPU/byte ≤ plain send, medians) from **%s** upward in this run: "
                     "suggested `send_zc_threshold: %d`." % (first_win, SIZES[first_win]))
    else:
        lines.append("SEND_ZC did not win consistently up to the largest size measured in this run: "
                     "suggested `send_zc_disable: true` on this machine (loopback).")
    if problems:
        lines.append("\n**Problems during the run:**\n")
        lines.extend("- " + p for p in problems)
    out_json = args.json or os.path.join(BENCH_DIR, "results", "sendzc.json")
    os.makedirs(os.path.dirname(out_json), exist_ok=True)
    with open(out_json, "w") as f:
        json.dump({"runs": runs, "problems": problems, "first_win": first_win}, f, indent=1)
    lines.append("\nRaw per-run data: `%s`." % os.path.relpath(out_json, ROOT))
    text = "\n".join(lines)
    replace_section(args.out, "bench/run-sendzc", text, "SEND_ZC threshold (bench/run-sendzc)")
    print(text)
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


# --------------------------------------------------------------------------- profile mode

def find_dataplane(pids):
    for p in pids:
        try:
            exe = os.path.basename(os.readlink("/proc/%d/exe" % p))
        except OSError:
            continue
        if exe.startswith(BIN_ALIAS["zproxy-dataplane"]) or exe.startswith("zproxy-dataplane"):
            return p
    return None


def cmd_profile(args):
    workdir = make_workdir("zb-profile-")
    bins, err = prepare_binaries(args, workdir, True, args.backend in ("auto", "zproxy"))
    if "zproxyd" not in bins:
        raise BenchError("zproxy could not be built:\n%s" % err)
    kind = args.backend
    if kind == "auto":
        kind = "zproxy" if "zproxy-test-backend" in bins else "nginx"
    hw = subprocess.run(["perf", "stat", "-e", "instructions", "true"], capture_output=True, text=True)
    event = "cpu-clock" if ("not supported" in hw.stderr or hw.returncode != 0) else "cycles"
    env = Env(args, workdir, bins)
    env.start_backend(kind)
    sections = []
    try:
        for scen, close in (("keep-alive", False), ("Connection: close", True)):
            if args.scenario not in ("both", "close" if close else "keepalive"):
                continue
            proc = env.start_proxy("zproxy")
            try:
                run_wrk(PORTS["zproxy"], "/", 2, args.connections, close=close, label="warm-up")
                dp = find_dataplane(proc.tree())
                if dp is None:
                    raise BenchError("zproxy-dataplane process not found under %d" % proc.pid)
                data = os.path.join(workdir, "perf-%s.data" % ("close" if close else "ka"))
                perf = subprocess.Popen(["perf", "record", "-e", event, "-g", "-F", "1999", "-o", data,
                                         "-p", str(dp), "--", "sleep", str(args.duration)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                time.sleep(0.3)
                r = run_wrk(PORTS["zproxy"], "/", args.duration - 1, args.connections, close=close,
                            pids=proc.tree(), label="profile " + scen)
                perf.wait(timeout=args.duration + 60)
                rep_self = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                           "--sort", "dso,symbol", "--percent-limit", "0.7", "-g", "none"],
                                          capture_output=True, text=True)
                rep_children = subprocess.run(["perf", "report", "-i", data, "--stdio", "--children",
                                               "--sort", "symbol", "--percent-limit", "3", "-g", "none"],
                                              capture_output=True, text=True)
                def clean(t, n):
                    ls = [l for l in t.splitlines() if l.strip() and not l.startswith("#")]
                    return "\n".join(ls[:n])
                sections.append("### %s (%.0f req/s, %.2f µs CPU/req during the profile)\n\n"
                                "Self time, top entries (`perf report --no-children --sort dso,symbol`):\n\n"
                                "```\n%s\n```\n\nInclusive (children) time:\n\n```\n%s\n```\n" % (
                                    scen, r["rps"], r.get("cpu_us_per_req", 0),
                                    clean(rep_self.stdout, 40), clean(rep_children.stdout, 30)))
                if args.keep_perf:
                    dst = os.path.join(BENCH_DIR, "results", os.path.basename(data))
                    shutil.copy2(data, dst)
            finally:
                proc.stop()
                time.sleep(1)
    finally:
        env.backend.stop()
    text = ("Command: `%s`  \nDate: %s  \nGit: %s; perf event `%s` (hardware counters %s), "
            "`perf record -g -p <zproxy-dataplane pid>`, wrk -t1 -c%d on CPU %s.\n\n" % (
                args.command_line, datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                git_rev(), event, "unavailable" if event == "cpu-clock" else "available",
                args.connections, LOAD_CPU)) + ("**Note:** " + SHIM_NOTE + "\n\n" if env.shim_capped else "") \
        + "\n".join(sections)
    replace_section(args.out, "bench/run-profile", text, "zproxy-dataplane profile (bench/run-profile)")
    print(text)
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


# --------------------------------------------------------------------------- main

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["http", "sendzc", "profile"])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64, help="wrk -c")
    ap.add_argument("--only", default=",".join(PROXIES), help="comma list of zproxy,nginx,haproxy")
    ap.add_argument("--out", default=os.path.join(BENCH_DIR, "RESULTS.md"))
    ap.add_argument("--json", default=None, help="raw results (default bench/results/<mode>.json)")
    ap.add_argument("--backend", choices=["auto", "zproxy", "nginx"], default="zproxy",
                    help="common backend: zproxy-test-backend (default), or nginx (temporary stand-in)")
    ap.add_argument("--idle-conns", type=int, default=8000)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds idle before reading RSS")
    ap.add_argument("--no-direct", action="store_true", help="skip the backend-direct baseline row")
    ap.add_argument("--no-build", action="store_true", help="use existing bazel-bin binaries")
    ap.add_argument("--strict", action="store_true", help="abort at the first error")
    ap.add_argument("--keep-workdir", action="store_true")
    ap.add_argument("--no-uring-shim", dest="uring_shim", action="store_false",
                    help="don't LD_PRELOAD bench/uring_files_shim.so into zproxy (see the file)")
    bl = ap.add_mutually_exclusive_group()
    bl.add_argument("--zproxy-baseline", metavar="REV",
                    help="http: also measure zproxy built at git revision REV (contender 'zproxy@REV', "
                         "built with bazel -c opt in <baseline-cache>/<sha>/, cached) and report "
                         "new/baseline ratios")
    bl.add_argument("--zproxy-baseline-bin", metavar="DIR",
                    help="http: like --zproxy-baseline with already built binaries: DIR/zproxyd and "
                         "DIR/zproxy-dataplane")
    ap.add_argument("--zproxy-baseline-name", metavar="NAME",
                    help="contender name is zproxy@NAME (default: REV's short hash; for a DIR its "
                         "REV file, else the directory's name)")
    ap.add_argument("--baseline-cache", default=default_baseline_cache(),
                    help="where --zproxy-baseline builds and keeps binaries (default %(default)s)")
    ap.add_argument("--sizes", default=",".join(SIZES), help="sendzc: sizes")
    ap.add_argument("--thresholds", default="never,always",
                    help="sendzc: send_zc_threshold values (never = send_zc_disable: true, always = 1, or bytes)")
    ap.add_argument("--scenario", choices=["keepalive", "close", "both"], default="both", help="profile")
    ap.add_argument("--keep-perf", action="store_true", help="profile: copy perf.data to bench/results/")
    args = ap.parse_args(argv)
    args.command_line = os.environ.get("BENCH_COMMAND") or " ".join(["bench/http_bench.py"] + argv)
    args.machine = machine_info()
    args.out = os.path.abspath(args.out)
    if args.mode != "http" and (args.zproxy_baseline or args.zproxy_baseline_bin):
        ap.error("--zproxy-baseline/--zproxy-baseline-bin are for the http mode only")
    try:
        if args.mode == "http":
            return cmd_http(args)
        if args.mode == "sendzc":
            return cmd_sendzc(args)
        return cmd_profile(args)
    except BenchError as e:
        log("FAILED: %s" % e)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
