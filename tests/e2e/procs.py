"""Processes the end-to-end tests run: test backends, nginx, zproxyd."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import httpraw
import yamlgen
from backendlog import BackendLog

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# What fails a test in the stderr of zproxyd and its data plane (one file for both), unless
# the test expects that exact message (see bad_lines):
#  - an error-level line of common/log.cc ("<time>Z zproxyd[PID] error: <message>");
#  - a data plane that died unasked: zproxyd's supervisor line "data plane pid N <how> after
#    T ms; restart #K in B ms ...", or any "data plane pid N killed by signal S" (also one that
#    died while draining or stopping);
#  - any sanitizer report line.
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\S+)\[\d+\] "
                      r"(debug|info|warn|error): (.*)")
DATAPLANE_DIED = re.compile(r"(old )?data plane pid \d+ "
                            r"(.*; restart #\d+ in \d+ ms|killed by signal \d+)")
SANITIZER = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer", "ThreadSanitizer",
             "MemorySanitizer", "runtime error:")


def dataplane_restarted(how, n=1):
    """The regex of zproxyd's line for a data plane that died (`how`: as DescribeWaitStatus
    in controlplane/dataplane_process.cc words it) and is restarted (restart #n), for the
    allow_stderr of a test that kills the data plane on purpose."""
    return (r"data plane pid \d+ %s after \d+ ms; restart #%d in \d+ ms "
            r"\(listen sockets stay open\)" % (re.escape(how), n))


SIGKILLED = "killed by signal 9 (Killed)"


def bad_lines(text, expected=()):
    """The lines of `text` (zproxyd's stderr) that fail a test. `expected`: regexes a test
    expects; each must match a whole message (the part after "error: " / "warn: ", or the
    whole line for lines not written by the logger), so one names exactly what it excuses."""
    expected = [re.compile(e) for e in expected]
    bad = []
    for line in text.splitlines():
        m = LOG_LINE.fullmatch(line)
        msg = m.group(3) if m else line
        if any(s in line for s in SANITIZER):
            pass
        elif not m or not (m.group(2) == "error" or DATAPLANE_DIED.match(msg)):
            continue
        if not any(e.fullmatch(msg) for e in expected):
            bad.append(line)
    return bad


def binary(env_var, bazel_path):
    return os.environ.get(env_var) or os.path.join(ROOT, "bazel-bin", bazel_path)


def zproxyd_path():
    return binary("ZPROXYD", "controlplane/zproxyd")


def backend_path():
    return binary("ZPROXY_TEST_BACKEND", "tests/backend/zproxy-test-backend")


# ZPROXY_E2E_STANDIN=nginx runs nginx, configured from the same generated config, in place of
# zproxyd: it validates the harness itself (tests of zproxy-only features fail, as they should).
STANDIN = os.environ.get("ZPROXY_E2E_STANDIN", "")


def free_port(host="127.0.0.1"):
    """A port nothing listens on right now on `host` (an IPv6 host in brackets is checked on
    IPv6: a port free on 127.0.0.1 may be taken on ::1). Tiny race with other processes:
    acceptable."""
    family = socket.AF_INET6 if host.startswith("[") or ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host.strip("[]"), 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


def stop_process(proc, timeout=10.0, sig=signal.SIGTERM):
    """Signals and reaps proc; SIGKILL if it outlives timeout. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def cpu_seconds(pid):
    """utime + stime of a process (its exited threads included), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gone_or_zombie(pid):
    """True once pid has exited. The process can be reaped between any two reads of /proc:
    a vanished file means gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def start_nginx_http(d, servers, ports):
    """nginx -p d in the foreground with `servers` (server blocks) in its http block; returns
    the Popen once every port in `ports` accepts. Temp paths and logs stay under d."""
    user = "user root;" if os.geteuid() == 0 else ""
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(user + """
worker_processes 1;
error_log %s/error.log warn;
pid %s/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %s/body; proxy_temp_path %s/proxy;
  fastcgi_temp_path %s/fcgi; uwsgi_temp_path %s/uwsgi; scgi_temp_path %s/scgi;
%s
}
""" % ((d,) * 7 + ("\n".join(servers),)))
    proc = subprocess.Popen(["nginx", "-p", d, "-c", conf, "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "stderr"), "wb"))
    for port in ports:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False
        if not wait_until(up, 10):
            stop_process(proc, 5, signal.SIGQUIT)
            raise RuntimeError("nginx did not start: " + open(os.path.join(d, "stderr")).read())
    return proc


class Backend:
    """zproxy-test-backend on 127.0.0.1:<free port> (or `listen`, e.g. "[::1]:0"), logging to
    tmpdir/NAME.log."""

    def __init__(self, name, tmpdir, threads=1, listen="127.0.0.1:0"):
        self.name = name
        self.log_path = os.path.join(tmpdir, "backend-%s.log" % name)
        self.stderr_path = os.path.join(tmpdir, "backend-%s.stderr" % name)
        self.log = BackendLog(self.log_path)
        self.proc = subprocess.Popen(
            [backend_path(), "--listen", listen, "--name", name, "--log", self.log_path,
             "--threads", str(threads)],
            stdout=subprocess.PIPE, stderr=open(self.stderr_path, "wb"), text=True)
        line = self.proc.stdout.readline()  # "listening on HOST:PORT" once bound
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("backend %s did not start: %r" % (name, line))
        self.addr = line.split()[-1]
        self.port = int(self.addr.rsplit(":", 1)[1])

    def stop(self):
        stop_process(self.proc, 5)


class Nginx:
    """nginx as a second kind of real upstream: /nginx/file.bin (1 MiB) and /status."""

    FILE_SIZE = 1 << 20

    def __init__(self, tmpdir):
        self.dir = os.path.join(tmpdir, "nginx")
        os.makedirs(os.path.join(self.dir, "files"), exist_ok=True)
        self.file_data = os.urandom(self.FILE_SIZE)
        with open(os.path.join(self.dir, "files", "file.bin"), "wb") as f:
            f.write(self.file_data)
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        d = self.dir
        with open(conf, "w") as f:
            # The test tree is root-only (0700): workers must run as root to read the file.
            user = "user root;" if os.geteuid() == 0 else ""
            f.write(user + """
worker_processes 1;
error_log %(d)s/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    server {
        listen 127.0.0.1:%(p)d;
        location /nginx/ { alias %(d)s/files/; }
        location = /status { return 200 "nginx ok\\n"; }
    }
}
""" % {"d": d, "p": self.port})
        self.proc = subprocess.Popen(
            ["nginx", "-p", d, "-c", conf, "-e", d + "/error.log",
             "-g", "daemon off; pid %s/nginx.pid;" % d],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "stderr"), "wb"))
        if not wait_until(lambda: self._up(), 10):
            self.stop()
            raise RuntimeError("nginx did not start: " + self.stderr())

    def _up(self):
        if self.proc.poll() is not None:
            raise RuntimeError("nginx exited: " + self.stderr())
        try:
            return httpraw.request(self.port, target="/status", timeout=1).status == 200
        except OSError:
            return False

    def stderr(self):
        out = ""
        for name in ("stderr", "error.log"):
            try:
                out += open(os.path.join(self.dir, name)).read()
            except OSError:
                pass
        return out

    def stop(self):
        stop_process(self.proc, 5, signal.SIGQUIT)


def base_config(listeners, clusters, **top):
    """A complete config with test-friendly defaults; `top` overrides top-level keys."""
    cfg = {
        "listeners": listeners,
        "clusters": clusters,
        "workers": 1,
        "metrics_address": "127.0.0.1:%d" % free_port(),
        "drain_timeout_ms": 5000,
    }
    cfg.update(top)
    return cfg


class Zproxy:
    """zproxyd --config <generated>; listener ports are filled in (free ports) when 0."""

    def __init__(self, config, tmpdir, name="zproxy", allow_stderr=(), start=True, wrapper=()):
        self.config = config
        # Command prefix, e.g. setpriv dropping capabilities (zproxyd then runs without BPF).
        self.wrapper = list(wrapper)
        self.tmpdir = tmpdir
        # Regexes of the messages this proxy's test expects (see bad_lines): each must match
        # a whole message, e.g. r"data plane pid \d+ killed by signal 9 \(Killed\) after \d+ ms;
        # restart #1 in \d+ ms \(listen sockets stay open\)".
        self.allow_stderr = tuple(allow_stderr)
        # Unix socket paths must stay short (108 bytes), so not under pytest's tmp dir.
        self.sockdir = tempfile.mkdtemp(prefix="zp-")
        config.setdefault("admin_address", "unix:%s/admin.sock" % self.sockdir)
        # Each proxy persists its Admin API state on its own, never in /var/lib/zproxy.
        config.setdefault("state_dir", os.path.join(self.sockdir, "state"))
        if os.path.isdir("/sys/fs/bpf") and os.access("/sys/fs/bpf", os.W_OK):
            # Pinned maps must not collide with another zproxy on this machine.
            config.setdefault("bpffs_path", "/sys/fs/bpf/zproxy-e2e-%s" % os.path.basename(self.sockdir))
        else:
            config.setdefault("bpffs_path", self.sockdir + "/bpf")
        self.ports = {}
        self.hosts = {}
        for l in config["listeners"]:
            host, port = l["address"].rsplit(":", 1)
            if port == "0":
                port = str(free_port(host if host.startswith("[") else "127.0.0.1"))
                l["address"] = "%s:%s" % (host, port)
            self.ports[l["name"]] = int(port)
            # Where the readiness probe connects: the listener's own address family (an
            # IPv6 listener such as [::1]:P cannot be reached on 127.0.0.1).
            self.hosts[l["name"]] = "::1" if host.startswith("[") else "127.0.0.1"
        self.port = self.ports[config["listeners"][0]["name"]]
        ma = config.get("metrics_address")
        self.metrics_port = int(ma.rsplit(":", 1)[1]) if ma else None
        self.config_path = os.path.join(tmpdir, name + ".yaml")
        with open(self.config_path, "w") as f:
            f.write(yamlgen.dump(config))
        self.stderr_path = os.path.join(tmpdir, name + ".stderr")
        self.checked_upto = 0  # bytes of stderr_path already checked for bad lines
        self.stdout_path = os.path.join(tmpdir, name + ".stdout")
        self.proc = None
        if start:
            self.start()

    def start(self, timeout=8.0, extra_args=()):
        if STANDIN == "nginx":
            cmd = nginx_standin_command(self.config, self.tmpdir, self.config_path)
        else:
            cmd = self.wrapper + [zproxyd_path(), "--config", self.config_path] + list(extra_args)
        # A restart appends: a data plane that outlived the previous zproxyd still writes to
        # this file (at its own offset), and tests read both runs' lines.
        mode = "ab" if self.proc is not None else "wb"
        self.proc = subprocess.Popen(cmd, stdout=open(self.stdout_path, mode),
                                     stderr=open(self.stderr_path, mode), cwd=ROOT)
        tcp = {l["name"] for l in self.config["listeners"] if "tcp_proxy" in l}
        tls = {l["name"] for l in self.config["listeners"] if "tls" in l}
        for name, port in self.ports.items():
            # tcp_proxy listeners speak no HTTP: the HTTP listeners (or /metrics) tell
            # when the data plane serves.
            if name in tcp:
                if self.metrics_port and not wait_until(
                        lambda: self._metrics_ready(), timeout, 0.05):
                    self.kill()
                    raise RuntimeError("zproxyd metrics not ready within %.0fs; stderr:\n%s"
                                       % (timeout, self.stderr()))
                continue
            if not wait_until(lambda: self._ready(port, name in tls, self.hosts[name]),
                              timeout, 0.05):
                self.kill()
                raise RuntimeError("zproxyd listener %s (port %d) not ready within %.0fs; "
                                   "stderr:\n%s" % (name, port, timeout, self.stderr()))

    def _metrics_ready(self):
        """zproxyd's GET /ready on the metrics port says 200 (a data plane serves every
        listener on the current config); the nginx stand-in: any response."""
        if STANDIN == "nginx":
            return self._ready(self.metrics_port)
        if self.proc.poll() is not None:
            raise RuntimeError("zproxyd exited with %s during startup; stderr:\n%s"
                               % (self.proc.returncode, self.stderr()))
        try:
            return httpraw.request(self.metrics_port, target="/ready", timeout=1).status == 200
        except (OSError, httpraw.ConnectionClosed, ValueError):
            return False

    def _ready(self, port, tls=False, host="127.0.0.1"):
        """Ready = an HTTP response (any status) on the listener (over TLS on TLS ones)."""
        if self.proc.poll() is not None:
            raise RuntimeError("zproxyd exited with %s during startup; stderr:\n%s"
                               % (self.proc.returncode, self.stderr()))
        try:
            with httpraw.Conn(port, host=host, timeout=1, tls=tls) as c:
                c.send(b"GET /__zproxy_e2e_ready HTTP/1.1\r\nHost: ready.invalid\r\n"
                       b"Connection: close\r\n\r\n")
                c.read_head()
                return True
        except (OSError, httpraw.ConnectionClosed, ValueError):  # ssl.SSLError is an OSError
            return False

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def bad_stderr_lines(self, expected=()):
        """bad_lines() of all of stderr, with this proxy's allow_stderr and `expected`."""
        return bad_lines(self.stderr(), list(self.allow_stderr) + list(expected))

    def unchecked_bad_stderr_lines(self, expected=()):
        """bad_lines() of the complete lines written since the last call (the e2e fixtures
        call it after every test and when stopping the proxy)."""
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(self.checked_upto)
                data = f.read()
        except OSError:
            return []
        data = data[:data.rfind(b"\n") + 1]
        self.checked_upto += len(data)
        return bad_lines(data.decode("utf-8", "replace"),
                         list(self.allow_stderr) + list(expected))

    def dataplane_pids(self):
        """Children of zproxyd (the data plane), from /proc/PID/task/*/children."""
        pids = []
        base = "/proc/%d/task" % self.proc.pid
        try:
            for tid in os.listdir(base):
                with open("%s/%s/children" % (base, tid)) as f:
                    pids += [int(p) for p in f.read().split()]
        except OSError:
            pass
        return pids

    def serving_dataplanes(self):
        """Live zproxy-dataplane processes holding a listen socket of this proxy (children
        or not: an adopted data plane is no child of zproxyd)."""
        return dataplanes_listening_on(self.ports.values())

    def stop(self, timeout=None):
        """SIGTERM and wait; returns the exit code."""
        if timeout is None:
            timeout = self.config.get("drain_timeout_ms", 5000) / 1000.0 + 5
        return stop_process(self.proc, timeout)

    def kill(self):
        """SIGKILL zproxyd and its data planes (they outlive a dead zproxyd on purpose)."""
        children = []
        if self.proc and self.proc.poll() is None:
            children = self.dataplane_pids()
            self.proc.kill()
            self.proc.wait(5)
        for pid in set(children) | set(self.serving_dataplanes()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.sockdir, ignore_errors=True)
        bpf = self.config.get("bpffs_path", "")
        if bpf.startswith("/sys/fs/bpf/zproxy-e2e-"):
            shutil.rmtree(bpf, ignore_errors=True)


# zproxyd without the capabilities BPF needs (CAP_BPF, CAP_SYS_ADMIN, CAP_PERFMON), like a
# container without them: every BPF piece takes its fallback (health: a memfd region).
NO_BPF = ("setpriv", "--bounding-set=-bpf,-sys_admin,-perfmon")


def _listen_inodes(ports):
    """Socket inodes of TCP sockets listening on any of `ports` (/proc/net/tcp{,6})."""
    want = {"%04X" % p for p in ports}
    inodes = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(path).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and f[1].rsplit(":", 1)[1] in want:
                inodes.add(f[9])
    return inodes


def dataplanes_listening_on(ports):
    """Pids of live (not zombie) zproxy-dataplane processes with a listen socket on `ports`."""
    inodes = _listen_inodes(ports)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            if not stat.split(" (", 1)[1].startswith("zproxy-datapla") or \
                    stat.split(") ", 1)[1][0] == "Z":
                continue
            for fd in os.listdir("/proc/%s/fd" % d):
                link = os.readlink("/proc/%s/fd/%s" % (d, fd))
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.append(int(d))
                    break
        except (OSError, IndexError):
            continue
    return pids


def run_check(config_path, timeout=30):
    """zproxyd --config FILE --check -> CompletedProcess."""
    return subprocess.run([zproxyd_path(), "--config", config_path, "--check"],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def nginx_standin_command(cfg, tmpdir, config_path):
    """Translates a zproxy config into an nginx config (approximately: hosts and methods of
    routes are ignored) and returns the command that runs it in the foreground."""
    d = tempfile.mkdtemp(prefix="ngx-standin-", dir=tmpdir)
    out = ["worker_processes %d;" % max(1, cfg.get("workers", 1)),
           "events { worker_connections 4096; }", "http {", "  access_log off;",
           "  client_body_temp_path %s/body;" % d, "  proxy_temp_path %s/proxy;" % d]
    for c in cfg["clusters"]:
        out.append("  upstream %s {" % c["name"])
        if c.get("lb") == "least_connections":
            out.append("    least_conn;")
        for e in c["endpoints"]:
            addr, w = (e, 1) if isinstance(e, str) else (e["address"], e.get("weight", 1))
            out.append("    server %s weight=%d max_fails=0;" % (addr, w))
        out.append("    keepalive %d;" % c.get("pool_size", 64))
        out.append("  }")
    for l in cfg["listeners"]:
        http = l.get("http", {})
        out += ["  server {", "    listen %s;" % l["address"],
                "    client_max_body_size %d;" % http.get("max_body_bytes", 0),
                "    large_client_header_buffers 4 %dk;" % max(1, http.get("max_request_line_bytes", 8192) // 1024)]
        seen = set()
        for r in l["routes"]:
            m = r["match"]
            loc = "= " + m["path"] if "path" in m else "^~ " + m.get("prefix", "/")
            if loc in seen:
                continue
            seen.add(loc)
            cl = next(c for c in cfg["clusters"] if c["name"] == r["cluster"])
            host = r.get("host_rewrite") or "$http_host"
            out += ["    location %s {" % loc,
                    "      proxy_pass http://%s;" % r["cluster"],
                    "      proxy_http_version 1.1;",
                    '      proxy_set_header Connection "";',
                    "      proxy_set_header Host %s;" % host,
                    "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                    "      proxy_set_header X-Forwarded-Proto $scheme;",
                    "      proxy_set_header X-Forwarded-Host $http_host;",
                    "      proxy_request_buffering off;", "      proxy_buffering off;",
                    "      proxy_next_upstream error;",
                    "      proxy_connect_timeout %dms;" % cl.get("connect_timeout_ms", 2000),
                    "      proxy_read_timeout %dms;" % cl.get("read_timeout_ms", 30000),
                    "    }"]
        if "^~ /" not in seen:
            out.append('    location / { return 404 "no route\\n"; }')
        out.append("  }")
    out.append("}")
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("\n".join(out) + "\n")
    return ["nginx", "-p", d, "-c", conf, "-e", "/dev/stderr",
            "-g", "daemon off; pid %s/nginx.pid;" % d]
