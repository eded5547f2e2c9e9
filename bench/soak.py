#!/usr/bin/python3
"""Soak: minutes of mixed traffic against one zproxyd under churn, with figures.

bench/soak [--minutes 10] [--bin DIR] [--out bench/RESULTS.md] [--json FILE]

Starts (in a private work dir, ports 18900-18919 on 127.0.0.1):
  - two zproxy-test-backends (cluster "app"; backend "b" is SIGKILLed and restarted every
    30 s), a WebSocket echo upstream and a raw TCP echo (both Python, in this process);
  - one zproxyd + data plane (2 workers) with an HTTP listener (routes, WebSocket, CONNECT to
    the echo, h2c), a TLS listener (self-signed certificate made at start) and a tcp_proxy
    listener to the echo;
and runs, all at once, standard-library clients that check every body by digest:
  h1-keepalive  GET /bytes/N and POST /echo-body on kept connections (2 threads)
  h1-close      GET /chunked/N with Connection: close, a new connection each
  tls           HTTPS keep-alive GET /bytes/N, a new TLS connection every 20 requests
  ws            WebSocket sessions: upgrade, 40 masked frames echoed, close
  connect       CONNECT tunnels to the echo: 40 round trips each
  tcp           tcp_proxy sessions to the echo: 40 round trips each
  churn         GET /soak-churn/echo: answered by a route that is added and deleted
  h2            h2load -n 2000 -c 4 -m 10 (h2c) every 15 s
while the churn happens: a route upsert/delete (zproxyctl) every second, a data plane
restart every minute (alternating `zproxyctl dataplane restart`, a graceful handover, and
SIGKILL of the data plane, which zproxyd restarts), an upstream killed and restarted every
30 s. Every second it samples the data plane's RSS and the fds of zproxyd and the data plane.

Report: operations sent, failed (by client and cause; each failure is matched against the
kill windows: a failure outside every window is "unexplained"), corrupted (a body or echo
that differs: must be 0), RSS min/max/end, fds at start and at the end (after the traffic
stopped and 3 s of quiet). Exit status 1 if anything was corrupted or a failure is
unexplained. Needs root (zproxyd's BPF parts), openssl, h2load (optional).
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = 18900
PORT = {"web": BASE, "tls": BASE + 1, "tcp": BASE + 2, "metrics": BASE + 9,
        "a": BASE + 10, "b": BASE + 11, "ws": BASE + 12, "echo": BASE + 13}


def log(msg):
    sys.stderr.write("[soak %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def pattern(n):
    """The test backend's /bytes/N and /chunked/N body: byte i = (i * 31 + 7) & 0xff."""
    return bytes(((i * 31 + 7) & 0xFF) for i in range(n))


PATTERN = pattern(1 << 20)

# ------------------------------------------------------------------ bookkeeping


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = {}          # client -> ops ok
        self.failures = []    # (client, cause, t_start, t_end)
        self.corrupt = []     # (client, what, t)
        self.retried = {}     # client -> keep-alive races retried on a fresh connection
        self.events = []      # (kind, t_start, t_end, detail)
        self.samples = []     # (t, dp_pid, dp_rss_kb, dp_fds, zd_fds)
        self.h2 = {"runs": 0, "requests": 0, "succeeded": 0, "failed": 0, "errored": 0,
                   "bad_runs": []}
        self.churn_seen = {"rewritten": 0, "plain": 0}

    def good(self, client, n=1):
        with self.lock:
            self.ok[client] = self.ok.get(client, 0) + n

    def fail(self, client, cause, t0):
        with self.lock:
            self.failures.append((client, cause, t0, time.time()))

    def bad(self, client, what):
        with self.lock:
            self.corrupt.append((client, what, time.time()))
        log("CORRUPTED %s: %s" % (client, what))

    def retry(self, client):
        with self.lock:
            self.retried[client] = self.retried.get(client, 0) + 1

    def event(self, kind, t0, t1, detail=""):
        with self.lock:
            self.events.append((kind, t0, t1, detail))


STATS = Stats()
STOP = threading.Event()


def cause_of(e):
    name = type(e).__name__
    if isinstance(e, OSError) and e.errno:
        name += "(%s)" % os.strerror(e.errno)
    elif isinstance(e, ValueError):
        name = str(e)[:80]
    return name


# ------------------------------------------------------------------ upstreams in Python


class WsEcho(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """A WebSocket upstream: answers the upgrade with 101, then echoes every byte."""
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512  # socketserver's default backlog of 5 drops SYNs in bursts


class WsHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(60)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = s.recv(4096)
                if not d:
                    return
                buf += d
            head, rest = buf.split(b"\r\n\r\n", 1)
            key = b""
            for line in head.split(b"\r\n")[1:]:
                n, _, v = line.partition(b":")
                if n.strip().lower() == b"sec-websocket-key":
                    key = v.strip()
            acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            if rest:
                s.sendall(rest)
            while True:
                d = s.recv(65536)
                if not d:
                    return
                s.sendall(d)
        except OSError:
            return


class RawEcho(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 512


class RawHandler(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        s.settimeout(60)
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    return
                s.sendall(d)
        except OSError:
            return


# ------------------------------------------------------------------ processes


class Proc:
    def __init__(self, name, cmd, workdir):
        self.name, self.cmd = name, cmd
        self.logpath = os.path.join(workdir, name + ".log")
        self.logf = open(self.logpath, "ab")
        self.p = subprocess.Popen(["bash", "-c", "ulimit -n 65536; exec \"$@\"", "bash"] + cmd,
                                  stdout=self.logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True, cwd=workdir)
        self.pid = self.p.pid

    def kill(self, sig=signal.SIGKILL):
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.p.wait(timeout=5)

    def stop(self):
        self.kill(signal.SIGTERM)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # anything left in its session
        except (ProcessLookupError, PermissionError):
            pass
        self.logf.close()


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def get(port, path, timeout=3):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def fd_kinds(pid):
    kinds = {}
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            k = t.split(":", 1)[0] if ":" in t else ("file" if t.startswith("/") else t)
            if k == "anon_inode":
                k = t
            kinds[k] = kinds.get(k, 0) + 1
    except OSError:
        pass
    return kinds


def nfds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


class Zproxy:
    def __init__(self, bins, workdir, tunnel_mode="auto"):
        self.bins, self.w = bins, workdir
        self.tunnel_mode = tunnel_mode
        self.admin = "unix:%s/admin.sock" % workdir
        self.conf = os.path.join(workdir, "zproxy.yaml")

    def write_config(self):
        w = self.w
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                        "-subj", "/CN=soak.test", "-addext", "subjectAltName=DNS:soak.test",
                        "-keyout", os.path.join(w, "key.pem"), "-out", os.path.join(w, "cert.pem")],
                       check=True, capture_output=True)
        with open(self.conf, "w") as f:
            f.write("""# generated by bench/soak.py
listeners:
  - name: web
    address: 127.0.0.1:%(web)d
    routes:
      - { match: { prefix: /ws }, cluster: ws }
      - { match: { prefix: / }, cluster: app }
    connect: { allow: ["127.0.0.1:%(echo)d"], idle_timeout_ms: 60000 }
    tunnel_mode: %(tunnel_mode)s
  - name: tls
    address: 127.0.0.1:%(tls)d
    routes: [ { match: { prefix: / }, cluster: app } ]
    tls:
      certificates: [ { cert: %(w)s/cert.pem, key: %(w)s/key.pem } ]
  - name: tcp
    address: 127.0.0.1:%(tcp)d
    tcp_proxy: { cluster: echo }
clusters:
  - name: app
    endpoints: [ 127.0.0.1:%(a)d, 127.0.0.1:%(b)d ]
    health_check: { interval_ms: 1000, http_path: /healthz, timeout_ms: 500,
                    healthy_threshold: 1, unhealthy_threshold: 1 }
    outlier_detection: { consecutive_failures: 2, base_ejection_ms: 2000 }
    idle_timeout_ms: 3000     # pooled connections go within seconds of the end: fds settle
  - name: ws
    endpoints: [ 127.0.0.1:%(ws)d ]
  - name: echo
    endpoints: [ 127.0.0.1:%(echo)d ]
workers: 2
metrics_address: 127.0.0.1:%(metrics)d
admin_address: unix:%(w)s/admin.sock
state_dir: %(w)s/state
bpffs_path: /sys/fs/bpf/zproxy-soak
drain_timeout_ms: 5000
access_log: %(w)s/access.log
""" % dict(PORT, w=w, tunnel_mode=self.tunnel_mode))
        chk = subprocess.run([self.bins["zproxyd"], "--config", self.conf, "--check"],
                             capture_output=True, text=True)
        if chk.returncode != 0:
            raise SystemExit("zproxyd --check rejected the soak config:\n" + chk.stdout + chk.stderr)

    def start(self):
        self.proc = Proc("zproxyd", [self.bins["zproxyd"], "--config", self.conf,
                                     "--dataplane", self.bins["zproxy-dataplane"]], self.w)

    def ctl(self, *args, timeout=15):
        return subprocess.run([self.bins["zproxyctl"], "--admin", self.admin] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    def status(self):
        r = self.ctl("-o", "json", "status", timeout=5)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def dp_pid(self):
        s = self.status() or {}
        return int(s.get("dataplanePid", s.get("dataplane_pid", 0)) or 0)


# ------------------------------------------------------------------ clients


def check_bytes(client, n, body, offset=0):
    if body != PATTERN[:n]:
        STATS.bad(client, "body of %d bytes differs (got %d bytes)" % (n, len(body)))
        return False
    return True


def h1_keepalive(idx):
    name = "h1-keepalive"
    rnd = random.Random(idx)
    conn, used = None, 0
    while not STOP.is_set():
        if conn is None:
            conn, used = http.client.HTTPConnection("127.0.0.1", PORT["web"], timeout=10), 0
        t0 = time.time()
        post = rnd.random() < 0.3
        n = rnd.choice([0, 1, 1000, 16384, 70000, 300000])
        body = rnd.randbytes(n) if post else None
        for attempt in (0, 1):
            try:
                if post:
                    conn.request("POST", "/echo-body", body=body,
                                 headers={"Content-Type": "application/octet-stream"})
                else:
                    conn.request("GET", "/bytes/%d" % n)
                r = conn.getresponse()
                data = r.read()
                used += 1
                if r.status != 200:
                    STATS.fail(name, "status %d" % r.status, t0)
                elif post and data != body:
                    STATS.bad(name, "echo-body of %d bytes differs" % n)
                elif not post and not check_bytes(name, n, data):
                    pass
                else:
                    STATS.good(name)
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", PORT["web"], timeout=10)
                if attempt == 0 and used > 0 and not isinstance(e, http.client.IncompleteRead):
                    # A kept connection the proxy closed while idle (drain, restart): the
                    # request never got a byte back; clients retry it on a new connection.
                    STATS.retry(name)
                    used = 0
                    continue
                STATS.fail(name, cause_of(e), t0)
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = None
                STATS.fail(name, cause_of(e), t0)
                time.sleep(0.05)
                break
    if conn is not None:
        conn.close()


def h1_close():
    name = "h1-close"
    rnd = random.Random(7)
    while not STOP.is_set():
        n = rnd.choice([0, 5, 4096, 65537, 200000])
        t0 = time.time()
        c = http.client.HTTPConnection("127.0.0.1", PORT["web"], timeout=10)
        try:
            c.request("GET", "/chunked/%d" % n, headers={"Connection": "close"})
            r = c.getresponse()
            data = r.read()
            if r.status != 200:
                STATS.fail(name, "status %d" % r.status, t0)
            elif check_bytes(name, n, data):
                STATS.good(name)
        except (OSError, http.client.HTTPException) as e:
            STATS.fail(name, cause_of(e), t0)
            time.sleep(0.05)
        finally:
            c.close()


def tls_client():
    name = "tls"
    rnd = random.Random(11)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn, used = None, 0
    while not STOP.is_set():
        if conn is None or used >= 20:
            if conn is not None:
                conn.close()
            conn, used = http.client.HTTPSConnection("127.0.0.1", PORT["tls"], timeout=10,
                                                     context=ctx), 0
        n = rnd.choice([0, 100, 16384, 100000])
        t0 = time.time()
        for attempt in (0, 1):
            try:
                conn.request("GET", "/bytes/%d" % n)
                r = conn.getresponse()
                data = r.read()
                used += 1
                if r.status != 200:
                    STATS.fail(name, "status %d" % r.status, t0)
                elif check_bytes(name, n, data):
                    STATS.good(name)
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    ssl.SSLEOFError) as e:
                conn.close()
                conn = http.client.HTTPSConnection("127.0.0.1", PORT["tls"], timeout=10, context=ctx)
                if attempt == 0 and used > 0:
                    STATS.retry(name)
                    used = 0
                    continue
                STATS.fail(name, cause_of(e), t0)
                break
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                conn = None
                STATS.fail(name, cause_of(e), t0)
                time.sleep(0.05)
                break
    if conn is not None:
        conn.close()


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        d = s.recv(n - len(buf))
        if not d:
            raise ConnectionResetError("peer closed after %d of %d bytes" % (len(buf), n))
        buf += d
    return bytes(buf)


def read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            raise ConnectionResetError("closed before the response head")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def ws_frame(payload, rnd):
    mask = rnd.randbytes(4)
    n = len(payload)
    hdr = bytes([0x82])
    if n < 126:
        hdr += bytes([0x80 | n])
    else:
        hdr += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return hdr + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload))


def tunnel_session(name, open_fn, rounds, rnd):
    """One tunnel: open_fn() gives a connected socket and bytes already received; then
    `rounds` random messages must come back byte for byte."""
    t0 = time.time()
    s = None
    try:
        s, pending = open_fn()
        for _ in range(rounds):
            if STOP.is_set():
                break
            msg = rnd.randbytes(rnd.choice([1, 100, 4000, 30000]))
            if name == "ws":
                msg = ws_frame(msg[:60000], rnd)
            s.sendall(msg)
            got = pending[:len(msg)]
            pending = pending[len(got):]
            got += recv_exact(s, len(msg) - len(got))
            if got != msg:
                STATS.bad(name, "echo of %d bytes differs" % len(msg))
                return
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        if s.recv(1) != b"":
            STATS.bad(name, "bytes after the echo")
            return
        STATS.good(name)
    except (OSError, ValueError) as e:
        STATS.fail(name, cause_of(e), t0)
        time.sleep(0.05)
    finally:
        if s is not None:
            s.close()


def ws_client():
    rnd = random.Random(13)

    def open_ws():
        s = socket.create_connection(("127.0.0.1", PORT["web"]), timeout=10)
        key = base64.b64encode(rnd.randbytes(16))
        s.sendall(b"GET /ws/echo HTTP/1.1\r\nHost: soak\r\nConnection: Upgrade\r\n"
                  b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
                  key + b"\r\n\r\n")
        head, rest = read_head(s)
        if not head.startswith(b"HTTP/1.1 101"):
            s.close()
            raise ValueError("upgrade answered %r" % head.split(b"\r\n")[0])
        return s, rest

    while not STOP.is_set():
        tunnel_session("ws", open_ws, 40, rnd)


def connect_client():
    rnd = random.Random(17)

    def open_connect():
        s = socket.create_connection(("127.0.0.1", PORT["web"]), timeout=10)
        t = "127.0.0.1:%d" % PORT["echo"]
        s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (t, t)).encode())
        head, rest = read_head(s)
        if not head.startswith(b"HTTP/1.1 200"):
            s.close()
            raise ValueError("CONNECT answered %r" % head.split(b"\r\n")[0])
        return s, rest

    while not STOP.is_set():
        tunnel_session("connect", open_connect, 40, rnd)


def tcp_client():
    rnd = random.Random(19)

    def open_tcp():
        return socket.create_connection(("127.0.0.1", PORT["tcp"]), timeout=10), b""

    while not STOP.is_set():
        tunnel_session("tcp", open_tcp, 40, rnd)


def churn_client():
    """The churned route rewrites Host to churn.soak; without it "/" serves the same path."""
    name = "churn"
    while not STOP.is_set():
        t0 = time.time()
        try:
            st, body = get(PORT["web"], "/soak-churn/echo", timeout=10)
            if st != 200:
                STATS.fail(name, "status %d" % st, t0)
            else:
                j = json.loads(body)
                host = dict((k.lower(), v) for k, v in j["headers"]).get("host", "")
                with STATS.lock:
                    STATS.churn_seen["rewritten" if host == "churn.soak" else "plain"] += 1
                STATS.good(name)
        except (OSError, http.client.HTTPException, ValueError) as e:
            STATS.fail(name, cause_of(e), t0)
        time.sleep(0.02)


def h2_client():
    if not shutil.which("h2load"):
        log("no h2load: HTTP/2 traffic skipped")
        return
    while not STOP.wait(15):
        t0 = time.time()
        r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10",
                            "http://127.0.0.1:%d/bytes/1000" % PORT["web"]],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored", r.stdout)
        codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", r.stdout)
        with STATS.lock:
            STATS.h2["runs"] += 1
            if m:
                total, done, ok, failed, errored = map(int, m.groups())
                STATS.h2["requests"] += total
                STATS.h2["succeeded"] += ok
                STATS.h2["failed"] += failed
                STATS.h2["errored"] += errored
                if failed or errored or (codes and int(codes.group(4))):
                    STATS.h2["bad_runs"].append((t0, time.time(), failed, errored,
                                                 codes.group(0) if codes else ""))
            else:
                STATS.h2["bad_runs"].append((t0, time.time(), -1, -1, r.stdout[-200:]))


# ------------------------------------------------------------------ churn


class Backends:
    def __init__(self, bins, w):
        self.bins, self.w = bins, w
        self.procs = {}

    def start(self, name):
        self.procs[name] = Proc("backend-" + name, [
            self.bins["zproxy-test-backend"], "--listen", "127.0.0.1:%d" % PORT[name],
            "--name", name], self.w)
        if not wait_port(PORT[name]):
            raise SystemExit("backend %s did not listen" % name)


def churn_loop(z, backends, minutes):
    """Route change every second, data plane restart every minute, upstream kill every 30 s."""
    start = time.time()
    end = start + minutes * 60
    route_on = False
    next_route = start + 1
    next_dp = start + 60
    next_up = start + 30
    dp_kind = 0
    route_calls = {"ok": 0, "failed": 0, "ms": []}
    while time.time() < end and not STOP.is_set():
        now = time.time()
        if now >= next_route:
            next_route += 1
            t0 = time.time()
            if route_on:
                r = z.ctl("routes", "delete", "--listener", "web", "--name", "churn")
            else:
                # UpsertRoute by name; a route-level host rewrite shows which one answered.
                r = z.ctl("routes", "add", "--listener", "web", "--prefix", "/soak-churn/",
                          "--cluster", "app", "--name", "churn", "--host-rewrite", "churn.soak")
            if r.returncode == 0:
                route_on = not route_on
                route_calls["ok"] += 1
                route_calls["ms"].append((time.time() - t0) * 1000)
            else:
                route_calls["failed"] += 1
                if route_calls["failed"] <= 5:
                    log("route change failed: %s" % (r.stderr.strip() or r.stdout.strip()))
            STATS.event("route", t0, time.time())
        if now >= next_up:
            next_up += 30
            t0 = time.time()
            backends.procs["b"].kill(signal.SIGKILL)
            backends.procs["b"].logf.close()
            time.sleep(1.0)
            backends.start("b")
            STATS.event("upstream-kill", t0, time.time(), "backend b down ~1 s")
        if now >= next_dp:
            next_dp += 60
            t0 = time.time()
            old = z.dp_pid()
            if dp_kind % 2 == 0:
                r = z.ctl("dataplane", "restart", timeout=30)
                kind, detail = "dp-restart", (r.stdout.strip() or r.stderr.strip())[:120]
            else:
                try:
                    os.kill(old, signal.SIGKILL)
                except (ProcessLookupError, TypeError):
                    pass
                kind, detail = "dp-sigkill", "pid %d" % old
            dp_kind += 1
            # Serving again: a new pid in GetStatus and the listener answers.
            new = old
            deadline = time.time() + 30
            while time.time() < deadline:
                new = z.dp_pid()
                if new > 0 and new != old:
                    try:
                        if get(PORT["web"], "/healthz", timeout=2)[0] == 200:
                            break
                    except OSError:
                        pass
                time.sleep(0.05)
            STATS.event(kind, t0, time.time(), "%s -> pid %d" % (detail, new))
            log("%s: data plane %d -> %d in %.0f ms" % (kind, old, new, (time.time() - t0) * 1000))
        time.sleep(0.02)
    return route_calls


def sampler(z):
    zpid = z.proc.pid
    pid, last_check = 0, 0
    while not STOP.is_set():
        now = time.time()
        if now - last_check > 2 or not pid or rss_kb(pid) is None:
            pid = max(z.dp_pid(), 0) or pid  # -1 while zproxyd restarts it
            last_check = now
        STATS.samples.append((now, pid, rss_kb(pid) if pid else None,
                              nfds(pid) if pid else None, nfds(zpid)))
        STOP.wait(1)


# ------------------------------------------------------------------ report

# How long after an event's end a failure still counts as caused by it: requests in flight
# at a kill end with a reset or a timeout after it.
GRACE = {"dp-sigkill": 2.0, "dp-restart": 6.0, "upstream-kill": 2.0, "route": 0.0}


def attribute(failures, events):
    out = []
    for client, cause, t0, t1 in failures:
        why = None
        for kind, e0, e1, _ in events:
            if kind == "route":
                continue
            if t0 <= e1 + GRACE[kind] and t1 >= e0 - 0.2:
                why = kind
                break
        out.append((client, cause, t0, t1, why))
    return out


def summarize(args, route_calls, quiet, machine, started):
    s = STATS
    att = attribute(s.failures, s.events)
    by = {}
    for client, cause, t0, t1, why in att:
        key = (client, cause, why or "UNEXPLAINED")
        by[key] = by.get(key, 0) + 1
    unexplained = sum(1 for a in att if a[4] is None)
    rss = [x[2] for x in s.samples if x[2]]
    dp_by_pid = {}
    for t, pid, r, fd, zfd in s.samples:
        if r:
            d = dp_by_pid.setdefault(pid, {"first": r, "max": r, "last": r, "n": 0})
            d["max"] = max(d["max"], r)
            d["last"] = r
            d["n"] += 1
    first = next((x for x in s.samples if x[2]), None)
    ops_ok = sum(s.ok.values())
    res = {
        "minutes": args.minutes, "started": started, "machine": machine,
        "ok": s.ok, "ok_total": ops_ok, "failed_total": len(s.failures),
        "sent_total": ops_ok + len(s.failures) + len(s.corrupt),
        "failures": [{"client": c, "cause": k, "why": w, "count": n} for (c, k, w), n in sorted(by.items())],
        "unexplained": unexplained, "corrupted": len(s.corrupt), "corrupt_list": s.corrupt[:20],
        "keepalive_retries": s.retried, "h2": s.h2, "churn_seen": s.churn_seen,
        "events": {k: sum(1 for e in s.events if e[0] == k) for k in
                   ("route", "upstream-kill", "dp-restart", "dp-sigkill")},
        "dp_events": [(e[0], round(e[2] - e[1], 3), e[3]) for e in s.events if e[0].startswith("dp")],
        "route_calls": {"ok": route_calls["ok"], "failed": route_calls["failed"],
                        "p50_ms": pct(route_calls["ms"], 50), "p99_ms": pct(route_calls["ms"], 99)},
        "rss_kb": {"start": first[2] if first else None, "min": min(rss) if rss else None,
                   "max": max(rss) if rss else None, "end": quiet["dp_rss"],
                   "per_dataplane_max": [d["max"] for d in dp_by_pid.values()]},
        "fds": {"zproxyd_start": first[4] if first else None, "zproxyd_end": quiet["zd_fds"],
                "dataplane_start": first[3] if first else None, "dataplane_end": quiet["dp_fds"],
                "settle_s": quiet["settle_s"], "dataplane_end_kinds": quiet["dp_fd_kinds"],
                "dataplane_max": max((x[3] for x in s.samples if x[3]), default=None),
                "zproxyd_max": max((x[4] for x in s.samples if x[4]), default=None)},
        "dataplanes": len(dp_by_pid),
        "end_metrics": quiet["metrics"],
    }
    return res


def pct(v, p):
    if not v:
        return None
    v = sorted(v)
    return round(v[min(len(v) - 1, int(len(v) * p / 100))], 1)


def report_md(res, cmdline):
    L = []
    L.append("Command: `%s`, started %s, %s minutes. Machine: %s." % (
        cmdline, res["started"], res["minutes"], res["machine"]))
    L.append("")
    L.append("| client | ok | failed |")
    L.append("|---|---:|---:|")
    fails = {}
    for f in res["failures"]:
        fails[f["client"]] = fails.get(f["client"], 0) + f["count"]
    for c in sorted(set(res["ok"]) | set(fails)):
        L.append("| %s | %d | %d |" % (c, res["ok"].get(c, 0), fails.get(c, 0)))
    h2 = res["h2"]
    L.append("| h2 (h2load, %d runs) | %d | %d failed + %d errored |" % (
        h2["runs"], h2["succeeded"], h2["failed"], h2["errored"]))
    L.append("")
    L.append("- operations sent (HTTP/1.1, TLS, tunnel sessions, churn GETs): **%d**, failed **%d** "
             "(unexplained by a kill window: **%d**), corrupted **%d**; HTTP/2 requests %d, failed %d."
             % (res["sent_total"], res["failed_total"], res["unexplained"], res["corrupted"],
                h2["requests"], h2["failed"] + h2["errored"]))
    if res["failures"]:
        L.append("- failures by client, cause and the kill window they fall in: " + "; ".join(
            "%s %s in %s: %d" % (f["client"], f["cause"], f["why"], f["count"]) for f in res["failures"]))
    if res["keepalive_retries"]:
        L.append("- kept connections closed by the proxy while idle (drain at a restart), the "
                 "request retried once on a new connection as HTTP clients do, not counted as "
                 "failures: " + ", ".join("%s %d" % kv for kv in sorted(res["keepalive_retries"].items())))
    ev = res["events"]
    L.append("- churn: %d route changes (zproxyctl, p50 %s ms, p99 %s ms, %d failed calls; the "
             "churned route answered %d times, the catch-all %d), %d upstream kills, %d graceful "
             "data plane restarts, %d data plane SIGKILLs (%d data plane processes in all)." % (
                 ev["route"], res["route_calls"]["p50_ms"], res["route_calls"]["p99_ms"],
                 res["route_calls"]["failed"], res["churn_seen"]["rewritten"],
                 res["churn_seen"]["plain"], ev["upstream-kill"], ev["dp-restart"],
                 ev["dp-sigkill"], res["dataplanes"]))
    if res["dp_events"]:
        L.append("- data plane restarts (kind, seconds until the new one served): " + ", ".join(
            "%s %.2f" % (k, d) for k, d, _ in res["dp_events"]))
    r = res["rss_kb"]
    L.append("- data plane RSS (KiB): first sample %s, min %s, max %s, end (after 3 s of quiet) %s; "
             "max per data plane process: %s." % (r["start"], r["min"], r["max"], r["end"],
                                                 ", ".join(str(x) for x in r["per_dataplane_max"])))
    f = res["fds"]
    L.append("- open fds: zproxyd %s at start, max %s, %s at the end; data plane %s at start, max "
             "%s, %s at the end (%s s after the traffic stopped; %s)." % (
                 f["zproxyd_start"], f["zproxyd_max"], f["zproxyd_end"], f["dataplane_start"],
                 f["dataplane_max"], f["dataplane_end"], f["settle_s"],
                 ", ".join("%s %d" % kv for kv in sorted(f["dataplane_end_kinds"].items()))))
    return "\n".join(L) + "\n"


def machine_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs, Linux %s" % (cpu, os.cpu_count(), os.uname().release)


def replace_section(path, title, text):
    try:
        with open(path) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    tag = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    begin, end = "<!-- %s:begin -->" % tag, "<!-- %s:end -->" % tag
    block = "%s\n## %s\n\n%s%s\n" % (begin, title, text, end)
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end) + 1:]
    else:
        new = old.rstrip("\n") + "\n\n" + block
    with open(path, "w") as f:
        f.write(new)


# ------------------------------------------------------------------ main


def find_bins(args):
    d = args.bin
    if not d:
        d = subprocess.run(["bazel", "info", "bazel-bin"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    bins = {"zproxyd": os.path.join(d, "controlplane/zproxyd"),
            "zproxy-dataplane": os.path.join(d, "dataplane/zproxy-dataplane"),
            "zproxy-test-backend": os.path.join(d, "tests/backend/zproxy-test-backend"),
            "zproxyctl": os.path.join(d, "tools/zproxyctl")}
    for k in list(bins):
        if not os.access(bins[k], os.X_OK):
            alt = os.path.join(d, k)  # a flat copy
            if os.access(alt, os.X_OK):
                bins[k] = alt
            else:
                raise SystemExit("missing %s (build: bazel build --jobs=2 //controlplane:zproxyd "
                                 "//dataplane:zproxy-dataplane //tests/backend:zproxy-test-backend "
                                 "//tools:zproxyctl)" % bins[k])
    # Private copies: a concurrent build cannot swap them mid-run.
    return bins


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--bin", help="directory with the binaries (default: bazel info bazel-bin)")
    ap.add_argument("--out", help="write the report into this markdown file (bench/RESULTS.md)")
    ap.add_argument("--title", default="Soak (bench/soak)")
    ap.add_argument("--json", help="write the figures as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--tunnel-mode", default="auto", choices=["auto", "sockmap", "splice", "copy"],
                    help="tunnel_mode of the HTTP listener (WebSocket and CONNECT tunnels)")
    args = ap.parse_args(argv)
    for p in PORT.values():
        try:
            socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
            raise SystemExit("port %d is in use" % p)
        except OSError:
            pass
    w = tempfile.mkdtemp(prefix="zproxy-soak-")
    bins = find_bins(args)
    for k, v in list(bins.items()):
        dst = os.path.join(w, "bin-" + k)
        shutil.copy2(v, dst)
        bins[k] = dst
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    machine = machine_info()
    log("work dir %s" % w)
    ws = WsEcho(("127.0.0.1", PORT["ws"]), WsHandler)
    echo = RawEcho(("127.0.0.1", PORT["echo"]), RawHandler)
    for srv in (ws, echo):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    backends = Backends(bins, w)
    backends.start("a")
    backends.start("b")
    z = Zproxy(bins, w, args.tunnel_mode)
    z.write_config()
    z.start()
    ok = False
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if get(PORT["web"], "/healthz")[0] == 200 and z.dp_pid():
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("zproxyd did not serve:\n" + open(z.proc.logpath).read()[-3000:])
        log("zproxyd %d, data plane %d serving" % (z.proc.pid, z.dp_pid()))
        time.sleep(2)
        threads = [threading.Thread(target=sampler, args=(z,), daemon=True)]
        threads += [threading.Thread(target=h1_keepalive, args=(i,), daemon=True) for i in range(2)]
        threads += [threading.Thread(target=f, daemon=True) for f in
                    (h1_close, tls_client, ws_client, connect_client, tcp_client, churn_client,
                     h2_client)]
        for t in threads:
            t.start()
        route_calls = churn_loop(z, backends, args.minutes)
        STOP.set()
        for t in threads:
            t.join(timeout=30)
        # Quiet: wait until the data plane's fds are back to the start (pooled upstream
        # connections close after the clusters' 3 s idle timeout), at most 20 s.
        t_stop = time.time()
        pid = z.dp_pid()
        first = next((x for x in STATS.samples if x[3]), None)
        while time.time() - t_stop < 20:
            if first and nfds(pid) is not None and nfds(pid) <= first[3] and time.time() - t_stop >= 3:
                break
            time.sleep(0.5)
        try:
            metrics = get(PORT["metrics"], "/metrics")[1].decode()
        except OSError:
            metrics = ""
        quiet_metrics = [l for l in metrics.splitlines() if re.match(
            r"zproxy_(connect_requests_total|upstream_connect_errors|passthrough|upgrades_total)", l)]
        quiet = {"metrics": quiet_metrics, "dp_rss": rss_kb(pid), "dp_fds": nfds(pid), "zd_fds": nfds(z.proc.pid),
                 "settle_s": round(time.time() - t_stop, 1), "dp_fd_kinds": fd_kinds(pid)}
        res = summarize(args, route_calls, quiet, machine, started)
        cmdline = "bench/soak --minutes %g" % args.minutes + (
            " --tunnel-mode " + args.tunnel_mode if args.tunnel_mode != "auto" else "")
        md = report_md(res, cmdline)
        sys.stdout.write(md)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1, default=str)
        if args.out:
            replace_section(args.out, args.title, md)
        ok = res["corrupted"] == 0 and res["unexplained"] == 0
    finally:
        STOP.set()
        z.proc.stop()
        for p in backends.procs.values():
            p.stop()
        ws.shutdown()
        echo.shutdown()
        subprocess.run(["rm", "-rf", "/sys/fs/bpf/zproxy-soak"], capture_output=True)
        if not args.keep:
            shutil.rmtree(w, ignore_errors=True)
        else:
            log("kept %s" % w)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
