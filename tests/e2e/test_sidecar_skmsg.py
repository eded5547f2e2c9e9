"""sk_msg acceleration of local hops (issue 15 §4, docs/sidecar.md "sk_msg"). Each test makes
two cgroup v2 children: the application's (sidecar.cgroup) and zproxy's own (zproxyd is
started in it: the sockops program goes to both). The application and its upstream (a
process in the application's cgroup bound to 127.0.0.2) talk through zproxy's outbound
listener; every hop is loopback, so the sockets go into zproxy_lh_socks and sk_msg moves
the bytes. Checked byte-exact: 1 MB each way over HTTP and over tcp_proxy (which copies
local hops instead of splicing them), half-close and reset each way, 1,000 short
connections leaving the SOCKHASH empty, bpftool's view, sk_msg off by config, and nothing
attached after a clean stop. The cgroups are removed in a finally."""

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import pytest

import machine
import procs
from conftest import listener
from procs import base_config, free_port
from test_original_destination import scrape, total
from test_sidecar import attached, cgroup2_mount

UPSTREAM_IP = "127.0.0.2"
MB = 1 << 20


def pattern(n, seed=0):
    return bytes(((i * 31 + 7 + seed) & 0xFF) for i in range(n))


def join_cgroup_cmd(cgroup):
    """A command prefix that moves the process into `cgroup`, then execs the rest."""
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup]


@pytest.fixture
def cgroups():
    mnt = cgroup2_mount()
    if mnt is None:
        pytest.skip("machine lacks a cgroup2 mount")
    machine.skip_unless("bpf", "bpffs")
    tag = "%08x" % random.getrandbits(32)
    app = os.path.join(mnt, "zproxy_test_app_%s" % tag)
    proxy = os.path.join(mnt, "zproxy_test_proxy_%s" % tag)
    os.mkdir(app)
    os.mkdir(proxy)
    try:
        yield app, proxy
    finally:
        for path in (app, proxy):
            # zproxyd, its data plane and the test's processes have been stopped; the
            # kernel may need a moment to see them gone.
            assert procs.wait_until(lambda: _empty(path), 10), open(path + "/cgroup.procs").read()
            os.rmdir(path)


def _empty(path):
    with open(os.path.join(path, "cgroup.procs")) as f:
        return f.read().strip() == ""


class InCgroup:
    """A process started in `cgroup`, stopped (SIGTERM, then SIGKILL) by stop()."""

    def __init__(self, cgroup, argv, **kw):
        self.proc = subprocess.Popen(join_cgroup_cmd(cgroup) + argv, **kw)

    def stop(self):
        procs.stop_process(self.proc, 5)


def start_backend(cgroup, tmpdir):
    """zproxy-test-backend on 127.0.0.2:<free port> inside the application's cgroup."""
    port = free_port(UPSTREAM_IP)
    b = InCgroup(cgroup, [procs.backend_path(), "--listen", "%s:%d" % (UPSTREAM_IP, port),
                          "--name", "lh", "--log", os.path.join(tmpdir, "backend-lh.log")],
                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = b.proc.stdout.readline()
    assert line.startswith("listening on "), line
    return b, port


def config(cgroup, sk_msg=None, tcp=False, idle_timeout_ms=None):
    if tcp:
        out = {"name": "outbound", "address": "127.0.0.1:0", "original_destination": True,
               "tcp_proxy": {"cluster": "passthrough", "mode": "sockmap"}}
    else:
        out = listener("outbound", [{"match": {"prefix": "/"}, "cluster": "passthrough"}])
        out["original_destination"] = True
    sidecar = {"cgroup": cgroup, "outbound_listener": "outbound"}
    if sk_msg is not None:
        sidecar["sk_msg"] = sk_msg
    passthrough = {"name": "passthrough", "type": "original_destination",
                   "connect_timeout_ms": 2000}
    if idle_timeout_ms is not None:
        passthrough["idle_timeout_ms"] = idle_timeout_ms
    return base_config([out], [passthrough], sidecar=sidecar)


def start_proxy(make_proxy, cgroups, expect_rc=0, **kw):
    app, proxy = cgroups
    return make_proxy(config(app, **kw), wrapper=join_cgroup_cmd(proxy), expect_rc=expect_rc)


def bpftool_json(*args):
    out = subprocess.run(["bpftool", "-j"] + list(args), capture_output=True, text=True,
                         timeout=10)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout) if out.stdout.strip() else []


def lh_counters(z):
    """zproxy_lh_stats summed over CPUs, read with bpftool from its pin."""
    pin = os.path.join(z.config["bpffs_path"], "sidecar", "zproxy_lh_stats")
    sums = {}
    for entry in bpftool_json("map", "dump", "pinned", pin):
        for per_cpu in entry["formatted"]["values"]:
            for k, v in per_cpu["value"].items():
                sums[k] = sums.get(k, 0) + v
    return sums


def lh_sockets(z):
    """Entries of the SOCKHASH zproxy_lh_socks (one per socket in it)."""
    pin = os.path.join(z.config["bpffs_path"], "sidecar", "zproxy_lh_socks")
    return bpftool_json("map", "dump", "pinned", pin)


def run_in(cgroup, script, *args, timeout=60):
    out = subprocess.run(join_cgroup_cmd(cgroup) + [sys.executable, "-c", script] +
                         [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


# HTTP client in the application's cgroup: POST a body to /echo-body (one keep-alive
# connection, `rounds` requests), or `count` short GETs (Connection: close).
HTTP_APP = r"""
import json, socket, sys
mode, ip, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: raise SystemExit("closed in head after %d bytes" % len(buf))
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status, length, close = int(lines[0].split()[1]), None, False
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        k, v = k.strip().lower(), v.strip().lower()
        if k == b"content-length": length = int(v)
        if k == b"connection": close = v == b"close"
    if length is None:
        while True:
            d = s.recv(65536)
            if not d: break
            buf += d
        return status, buf, True
    while len(buf) < length:
        d = s.recv(1 << 20)
        if not d: raise SystemExit("closed in body")
        buf += d
    return status, buf[:length], close
if mode == "post":
    # Two requests, on one connection unless the first response says Connection: close
    # (zproxy does when the response starts before the request body has all arrived,
    # which /echo-body's streaming makes likely).
    body = bytes(((i * 31 + 7) & 0xff) for i in range(n))
    s, res = None, []
    for r in range(2):
        if s is None:
            s = socket.create_connection((ip, port), timeout=20)
        s.sendall(b"POST /echo-body HTTP/1.1\r\nHost: lh.test\r\nContent-Length: %d\r\n\r\n" % n + body)
        status, got, close = read_response(s)
        res.append([status, len(got), got == body])
        if close:
            s.close()
            s = None
    if s is not None:
        s.close()
    print(json.dumps(res))
else:
    ok = 0
    for i in range(n):
        s = socket.create_connection((ip, port), timeout=20)
        s.sendall(b"GET / HTTP/1.1\r\nHost: lh.test\r\nConnection: close\r\n\r\n")
        status, got, _ = read_response(s)
        s.close()
        ok += status == 200 and got.startswith(b"hello from lh")
    print(json.dumps(ok))
"""


def test_http_one_megabyte_each_way_is_redirected(cgroups, make_proxy, tmp_path):
    app, proxy = cgroups
    backend, port = start_backend(app, str(tmp_path))
    try:
        z = start_proxy(make_proxy, cgroups)
        assert "sidecar: sk_msg on: sockops zproxy_lh_ops on %s, %s" % (proxy, app) in z.stderr()
        # bpftool: the programs on both cgroups, the sk_msg program on the map.
        assert "zproxy_lh_ops" in attached(app) and attached(proxy) == ["zproxy_lh_ops"]
        assert "other process(es)" not in z.stderr()  # zproxyd has its cgroup to itself
        names = {p.get("name") for p in bpftool_json("prog", "show")}
        assert {"zproxy_lh_ops", "zproxy_lh_msg"} <= names
        maps = {m.get("name") for m in bpftool_json("map", "show")}
        assert {"zproxy_lh_socks", "zproxy_lh_stats", "zproxy_lh_mode"} <= maps
        before = lh_counters(z)
        res = run_in(app, HTTP_APP, "post", UPSTREAM_IP, port, MB)
        assert res == [[200, MB, True], [200, MB, True]]
        after = lh_counters(z)
        moved = after["redirected_bytes"] - before["redirected_bytes"]
        # Both hops (application -> zproxy -> upstream and back), 2 MB each way per
        # request: most of it by sk_msg, none of the hops missed.
        assert moved >= 4 * 2 * MB, (before, after)
        assert after["misses"] == before["misses"], (before, after)
        assert after["inserts"] - before["inserts"] >= 4, (before, after)
        fams = scrape(z)
        assert total(fams, "zproxy_original_destination_total", source="bpf_map") >= 1
        assert total(fams, "zproxy_sidecar_sk_msg_enabled") == 1
        assert total(fams, "zproxy_sidecar_sk_msg_redirected_bytes_total") >= moved
        assert z.stop() == 0
        assert attached(app) == [] and attached(proxy) == []
        assert not os.path.exists(os.path.join(z.config["bpffs_path"], "sidecar",
                                               "zproxy_lh_socks"))
    finally:
        backend.stop()


def test_thousand_short_connections_leave_the_hash_empty(cgroups, make_proxy, tmp_path):
    app, _ = cgroups
    backend, port = start_backend(app, str(tmp_path))
    try:
        # The upstream connection zproxy pools is closed 1 s after its last use.
        z = start_proxy(make_proxy, cgroups, idle_timeout_ms=1000)
        before = lh_counters(z)
        assert run_in(app, HTTP_APP, "get", UPSTREAM_IP, port, 1000, timeout=120) == 1000
        # Every socket left the hash when it closed (the kernel unlinks it).
        assert procs.wait_until(lambda: lh_sockets(z) == [], 10), len(lh_sockets(z))
        after = lh_counters(z)
        inserted = after["inserts"] - before["inserts"]
        # Two sockets per client connection (the application's, zproxy's), and the pair of
        # the upstream connection zproxy keeps pooled for the destination (reused, so
        # inserted once, not per request).
        assert 2 * 1000 + 2 <= inserted < 3 * 1000, (before, after)
        assert procs.wait_until(
            lambda: lh_counters(z)["removals"] - before["removals"] >= inserted, 10)
        assert lh_counters(z)["redirected_msgs"] - before["redirected_msgs"] >= 2 * 1000
    finally:
        backend.stop()


def test_sk_msg_off_by_config(cgroups, make_proxy, tmp_path):
    app, proxy = cgroups
    backend, port = start_backend(app, str(tmp_path))
    try:
        z = start_proxy(make_proxy, cgroups, sk_msg=False)
        assert "sidecar: sk_msg off (sidecar.sk_msg: false)" in z.stderr()
        assert "zproxy_lh_ops" not in attached(app) and attached(proxy) == []
        assert not os.path.exists(os.path.join(z.config["bpffs_path"], "sidecar",
                                               "zproxy_lh_socks"))
        assert run_in(app, HTTP_APP, "post", UPSTREAM_IP, port, 65536) == [[200, 65536, True]] * 2
        fams = scrape(z)
        assert total(fams, "zproxy_original_destination_total", source="bpf_map") >= 1
        assert total(fams, "zproxy_sidecar_sk_msg_enabled") == 0
        assert "zproxy_sidecar_sk_msg_redirected_bytes_total" not in fams
    finally:
        backend.stop()


def test_zproxyd_started_in_a_shared_or_root_cgroup_takes_one_of_its_own(cgroups, make_proxy,
                                                                          tmp_path):
    """Started from the test runner's cgroup (the root here, or one it shares with other
    processes), zproxyd moves into a child cgroup it makes before it opens sockets, so
    sk_msg works without a systemd unit; a clean stop removes the child."""
    app, _ = cgroups
    backend, port = start_backend(app, str(tmp_path))
    try:
        z = make_proxy(config(app))  # no wrapper: zproxyd inherits pytest's cgroup
        err = z.stderr()
        assert "sidecar: zproxyd moved from " in err, err
        child = err.split("into a cgroup of its own, ", 1)[1].split(",", 1)[0]
        assert os.path.basename(child).startswith("zproxyd-sidecar-"), child
        with open(os.path.join(child, "cgroup.procs")) as f:
            assert str(z.proc.pid) in f.read().split()
        assert attached(child) == ["zproxy_lh_ops"] and "zproxy_lh_ops" in attached(app)
        assert "other process(es)" not in err
        before = lh_counters(z)
        assert run_in(app, HTTP_APP, "post", UPSTREAM_IP, port, 65536) == [[200, 65536, True]] * 2
        after = lh_counters(z)
        assert after["redirected_bytes"] - before["redirected_bytes"] >= 4 * 65536, (before, after)
        assert total(scrape(z), "zproxy_sidecar_sk_msg_enabled") == 1
        assert z.stop() == 0
        assert attached(app) == []
        assert procs.wait_until(lambda: not os.path.exists(child), 5), child
    finally:
        backend.stop()


# Upstream for the tcp_proxy tests, in the application's cgroup: per connection, the first
# byte says what to do; results go to stdout as JSON lines.
TCP_UPSTREAM = r"""
import hashlib, json, socket, struct, sys, threading
ip, port = sys.argv[1], int(sys.argv[2])
def pattern(n, seed):
    return bytes(((i * 31 + 7 + seed) & 0xff) for i in range(n))
def read_all(c):
    data = b""
    while True:
        d = c.recv(1 << 20)
        if not d: return data
        data += d
def say(**kw):
    sys.stdout.write(json.dumps(kw) + "\n"); sys.stdout.flush()
def handle(c):
    # A timeout makes Python poll before each recv: a blocking recv on a socket in the
    # sk_msg hash can fail with EAGAIN when a state change wakes it without data
    # (tcp_bpf_recvmsg on 6.18; docs/sidecar.md, "sk_msg").
    c.settimeout(20)
    try:
        cmd = c.recv(1)
        if cmd == b"E":    # the client sends then half-closes; we answer after its FIN
            data = read_all(c)
            say(cmd="E", n=len(data), ok=data == pattern(len(data), 1))
            c.sendall(pattern(1 << 20, 2))
            c.close()
        elif cmd == b"H":  # we send and half-close first, then read the client's answer
            c.sendall(pattern(1 << 20, 3))
            c.shutdown(socket.SHUT_WR)
            data = read_all(c)
            say(cmd="H", answer=data.decode())
            c.close()
        elif cmd == b"R":  # we reset the connection
            c.recv(5)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
        elif cmd == b"W":  # the client resets: what do we see?
            try:
                read_all(c)
                say(cmd="W", saw="eof")
            except ConnectionResetError:
                say(cmd="W", saw="reset")
            c.close()
    except Exception as e:
        import traceback
        say(cmd="?", error=repr(e), where=traceback.format_exc()[-300:])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((ip, port))
srv.listen(64)
say(ready=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
"""

TCP_APP = r"""
import json, socket, struct, sys, time
ip, port, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def pattern(n, seed):
    return bytes(((i * 31 + 7 + seed) & 0xff) for i in range(n))
def read_all(s):
    data = b""
    while True:
        d = s.recv(1 << 20)
        if not d: return data
        data += d
s = socket.create_connection((ip, port), timeout=20)
peer = list(s.getpeername())
if what == "E":
    s.sendall(b"E" + pattern(1 << 20, 1))
    s.shutdown(socket.SHUT_WR)
    data = read_all(s)
    print(json.dumps({"peer": peer, "n": len(data), "ok": data == pattern(1 << 20, 2)}))
elif what == "H":
    s.sendall(b"H")
    data = read_all(s)  # its FIN arrives after 1 MB; our side is still open
    s.sendall(b"still here")
    s.shutdown(socket.SHUT_WR)
    rest = read_all(s)
    print(json.dumps({"n": len(data), "ok": data == pattern(1 << 20, 3), "rest": len(rest)}))
elif what == "R":
    s.sendall(b"R1234")
    try:
        read_all(s)
        print(json.dumps({"saw": "eof"}))
    except ConnectionResetError:
        print(json.dumps({"saw": "reset"}))
elif what == "W":
    s.sendall(b"W")
    time.sleep(0.3)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    print(json.dumps({"sent": "reset"}))
"""


@pytest.fixture
def tcp_upstream(cgroups):
    port = free_port(UPSTREAM_IP)
    up = InCgroup(cgroups[0], [sys.executable, "-u", "-c", TCP_UPSTREAM, UPSTREAM_IP, str(port)],
                  stdout=subprocess.PIPE, text=True)
    assert json.loads(up.proc.stdout.readline()) == {"ready": True}
    lines = []

    def pump():
        for line in up.proc.stdout:
            lines.append(json.loads(line))

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    yield port, lines
    up.stop()


def test_tcp_proxy_half_close_and_reset_each_way(cgroups, make_proxy, tcp_upstream):
    """tcp_proxy (mode sockmap) between local hops: its sockets are sk_msg redirect targets,
    which the sk_skb verdict never sees, so the data plane copies (counted as
    local_hop) and still forwards FINs and RSTs both ways."""
    app, _ = cgroups
    port, lines = tcp_upstream
    z = start_proxy(make_proxy, cgroups, tcp=True)
    before = lh_counters(z)
    r = run_in(app, TCP_APP, UPSTREAM_IP, port, "E")
    assert r == {"peer": [UPSTREAM_IP, port], "n": MB, "ok": True}
    r = run_in(app, TCP_APP, UPSTREAM_IP, port, "H")
    assert r == {"n": MB, "ok": True, "rest": 0}
    # A reset on one side ends the other promptly: a reset or at least a close (the copy
    # mode's contract, as in test_passthrough.py; sockmap mode resets).
    t0 = time.monotonic()
    r = run_in(app, TCP_APP, UPSTREAM_IP, port, "R")
    assert r["saw"] in ("reset", "eof") and time.monotonic() - t0 < 5
    r = run_in(app, TCP_APP, UPSTREAM_IP, port, "W")
    assert procs.wait_until(lambda: any(l.get("cmd") == "W" for l in lines), 5), lines
    assert {"cmd": "E", "n": MB, "ok": True} in lines
    assert {"cmd": "H", "answer": "still here"} in lines
    assert [l["saw"] in ("reset", "eof") for l in lines if l.get("cmd") == "W"] == [True]
    assert not [l for l in lines if l.get("cmd") == "?"], lines
    after = lh_counters(z)
    assert after["redirected_bytes"] - before["redirected_bytes"] >= 4 * MB, (before, after)
    fams = scrape(z)
    assert total(fams, "zproxy_tunnel_fallbacks_total", reason="local_hop") >= 4
    assert total(fams, "zproxy_passthrough_connections_total", mode="copy") >= 4


def test_tcp_proxy_sockmap_still_splices_non_local_peers(cgroups, make_proxy):
    """sk_msg on, but the client (this test, outside both cgroups) and the upstream (a
    thread of it) are in no hash: zproxy's sockets are, yet nothing can redirect into them,
    so tcp_proxy keeps its sockmap mode, byte-exact."""
    machine.skip_unless("sockmap")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    got = {}

    def serve():
        c, _ = srv.accept()
        data = b""
        while True:
            d = c.recv(1 << 20)
            if not d:
                break
            data += d
        got["hash"] = hashlib.sha256(data).hexdigest()
        c.sendall(data)
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    app, proxy = cgroups
    cfg = config(app)
    cfg["listeners"].insert(0, {"name": "tcp", "address": "127.0.0.1:0",
                                "tcp_proxy": {"cluster": "up", "mode": "sockmap"}})
    cfg["clusters"].append({"name": "up",
                            "endpoints": ["127.0.0.1:%d" % srv.getsockname()[1]]})
    z = make_proxy(cfg, wrapper=join_cgroup_cmd(proxy))
    assert "sidecar: sk_msg on" in z.stderr()
    body = pattern(MB, 5)
    s = socket.create_connection(("127.0.0.1", z.port), timeout=20)
    s.sendall(body)
    s.shutdown(socket.SHUT_WR)
    back = b""
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        back += d
    s.close()
    t.join(10)
    assert back == body and got["hash"] == hashlib.sha256(body).hexdigest()
    fams = scrape(z)
    assert total(fams, "zproxy_passthrough_connections_total", mode="sockmap") == 1
    assert total(fams, "zproxy_tunnel_fallbacks_total", reason="local_hop") == 0


def test_sigkill_detaches_sockops_and_a_restart_reattaches(cgroups, make_proxy, tmp_path):
    """zproxyd's bpf_links close with its descriptors: after a SIGKILL no sockops program
    stays on either cgroup (new connections are no longer inserted). The next zproxyd adopts
    the pinned maps (the SOCKHASH still holds the old sk_msg program) and accelerates again."""
    app, proxy = cgroups
    backend, port = start_backend(app, str(tmp_path))
    try:
        z = start_proxy(make_proxy, cgroups, expect_rc=None)
        assert "zproxy_lh_ops" in attached(app) and attached(proxy) == ["zproxy_lh_ops"]
        z.kill()
        assert procs.wait_until(lambda: attached(app) == [] and attached(proxy) == [], 5), (
            attached(app), attached(proxy))
        z.start()
        assert z.stderr().count("sidecar: sk_msg on:") == 2, z.stderr()
        before = lh_counters(z)
        assert run_in(app, HTTP_APP, "post", UPSTREAM_IP, port, 65536) == [[200, 65536, True]] * 2
        after = lh_counters(z)
        assert after["redirected_bytes"] - before["redirected_bytes"] >= 4 * 65536, (before, after)
        assert z.stop() == 0
        assert attached(app) == [] and attached(proxy) == []
    finally:
        backend.stop()


def test_zproxyd_leaves_a_cgroup_it_shares(cgroups, make_proxy):
    """Other processes in zproxyd's cgroup would get sk_msg between their own loopback
    sockets too (and its blocking-recv limitation): zproxyd moves into a child of it."""
    app, proxy = cgroups
    other = InCgroup(proxy, ["sleep", "60"])
    try:
        z = start_proxy(make_proxy, cgroups)
        err = z.stderr()
        assert "sidecar: zproxyd moved from %s (" % proxy in err, err
        assert "other process(es)" not in err
        child = [d for d in os.listdir(proxy) if d.startswith("zproxyd-sidecar-")]
        assert len(child) == 1, os.listdir(proxy)
        assert attached(os.path.join(proxy, child[0])) == ["zproxy_lh_ops"]
        assert attached(proxy) == []  # the shared cgroup itself gets nothing
        assert z.stop() == 0
        assert not [d for d in os.listdir(proxy) if d.startswith("zproxyd-sidecar-")]
    finally:
        other.stop()
