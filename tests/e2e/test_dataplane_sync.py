"""Data plane sync over gRPC: Admin API changes are pushed to the running data plane (no
process restart), measured change-to-served latency, pushes under load, listener changes
still go through a handover, and the data plane outlives a SIGKILLed zproxyd until a new
zproxyd started with --no-adopt takes over its ports (the fallback when adoption is
impossible; adoption itself: test_adoption.py)."""

import copy
import os
import re
import signal
import subprocess
import time

import httpraw
import yamlgen
from conftest import catch_all, cluster, listener
from ctl import jsonout, ok, run
from procs import base_config, free_port, wait_until


def _cfg(a, tmp_path, **top):
    top.setdefault("state_dir", str(tmp_path / "state"))
    return base_config([listener("web", catch_all("a"))], [cluster("a", a.addr)], **top)


def _served_by(z, target, name, port=None):
    try:
        r = httpraw.request(port or z.port, target=target, host="test.local", timeout=0.5)
    except (OSError, httpraw.ConnectionClosed):
        return False
    return r.status == 200 and ("from %s" % name).encode() in r.body


def _pid(z):
    return int(jsonout(z, "status")["dataplane_pid"])


def _pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of the test is dead too, once its last thread is gone
        with open("/proc/%d/stat" % pid) as f:
            if f.read().split(") ", 1)[1][0] != "Z":
                return True
        # The leader of a SIGKILLed multi-threaded process turns Z while its other threads
        # (workers, io-wq) are still exiting; they share its fd table, so its sockets are
        # still open (a restarted zproxyd then finds its ports in use).
        return len(os.listdir("/proc/%d/task" % pid)) > 1
    except OSError:
        return False


def test_route_is_pushed_without_a_dataplane_restart(make_proxy, backends, tmp_path):
    a, b = backends["a"], backends["b"]
    z = make_proxy(_cfg(a, tmp_path))
    pid = _pid(z)
    ok(z, "clusters", "add", "b", "--endpoint", b.addr)
    ok(z, "routes", "add", "--listener", "web", "--prefix", "/p/", "--cluster", "b")
    assert wait_until(lambda: _served_by(z, "/p/x", "b"), 1, 0.001)
    assert _served_by(z, "/other", "a")
    st = jsonout(z, "status")
    assert int(st["dataplane_pid"]) == pid and int(st.get("handovers", 0)) == 0, st
    assert "sync: data plane pid %d connected" % pid in z.stderr()
    # GetStats comes from the streamed stats (the data plane sends them every second).
    assert wait_until(lambda: "config version" not in run(z, "stats").stderr, 3)
    stats = jsonout(z, "stats")
    assert int(stats["config_version"]) == int(st["config_version"]), stats


def test_route_propagation_latency(make_proxy, backends, tmp_path, capsys):
    """API call returning -> route served (new connection per poll, every 1 ms)."""
    a, b = backends["a"], backends["b"]
    z = make_proxy(_cfg(a, tmp_path))
    pid = _pid(z)
    ok(z, "clusters", "add", "b", "--endpoint", b.addr)
    after, calls = [], []
    for i in range(20):
        t0 = time.monotonic()
        ok(z, "routes", "add", "--listener", "web", "--prefix", "/lat%d/" % i, "--cluster", "b")
        t1 = time.monotonic()
        assert wait_until(lambda: _served_by(z, "/lat%d/x" % i, "b"), 5, 0.001)
        t2 = time.monotonic()
        calls.append((t1 - t0) * 1000)
        after.append((t2 - t1) * 1000)
    with capsys.disabled():
        print("\nroute push: call (zproxyctl start + push + ACK) p50 %.1f ms p99 %.1f ms; "
              "return -> served p50 %.2f ms p99 %.2f ms (n=%d)" % (
                  _pct(calls, 50), _pct(calls, 99), _pct(after, 50), _pct(after, 99), len(after)))
    assert _pct(after, 99) < 100, after
    assert _pid(z) == pid


def test_pushes_under_load_fail_nothing(make_proxy, backends, tmp_path):
    a, b = backends["a"], backends["b"]
    z = make_proxy(_cfg(a, tmp_path))
    pid = _pid(z)
    ok(z, "clusters", "add", "b", "--endpoint", b.addr)
    w = subprocess.Popen(["wrk", "-t1", "-c20", "-d3s", "http://127.0.0.1:%d/" % z.port],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.3)
    for i in range(10):
        ok(z, "routes", "add", "--listener", "web", "--prefix", "/load%d/" % i, "--cluster", "b")
        time.sleep(0.15)
    out = w.communicate(timeout=30)[0]
    print(out)
    assert "Socket errors" not in out, out
    assert "Non-2xx" not in out, out
    assert int(re.search(r"(\d+) requests in", out).group(1)) > 100, out
    assert _pid(z) == pid


def test_listener_change_goes_through_a_handover(make_proxy, backends, tmp_path):
    a = backends["a"]
    z = make_proxy(_cfg(a, tmp_path))
    pid = _pid(z)
    # max_header_bytes above what the running workers allocated: NACK with needs_restart.
    cfg = copy.deepcopy(z.config)
    cfg["listeners"][0].setdefault("http", {})["max_header_bytes"] = 262144
    path = tmp_path / "bigger-heads.yaml"
    path.write_text(yamlgen.dump(cfg))
    r = run(z, "config", "apply", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    new = _pid(z)
    assert new != pid
    assert "graceful data plane handover because it cannot be applied in place" in z.stderr()
    assert wait_until(lambda: _served_by(z, "/", "a"), 2, 0.005)
    assert wait_until(lambda: "sync: data plane pid %d connected" % new in z.stderr(), 3)


def test_zproxyd_kill_and_takeover_under_load_fail_nothing(make_proxy, backends, tmp_path):
    """--no-adopt: the orphan's sockets travel back to the new zproxyd, a new data plane
    serves them and the orphan drains: nothing is refused or reset."""
    a = backends["a"]
    z = make_proxy(_cfg(a, tmp_path))
    old = _pid(z)
    w = subprocess.Popen(["wrk", "-t1", "-c20", "-d4s", "http://127.0.0.1:%d/" % z.port],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.5)
        z.proc.send_signal(signal.SIGKILL)
        z.proc.wait(5)
        time.sleep(0.5)
        z.start(extra_args=["--no-adopt"])
        assert wait_until(lambda: not _alive(old), 10), z.stderr()
        assert "adoption of data plane pid %d impossible (--no-adopt)" % old in z.stderr()
        out = w.communicate(timeout=30)[0]
        print(out)
        assert "Socket errors" not in out, out
        assert "Non-2xx" not in out, out
        assert _pid(z) != old
    finally:
        if w.poll() is None:
            w.kill()
        if _alive(old):
            os.kill(old, signal.SIGKILL)


def test_dataplane_outlives_zproxyd_and_is_taken_over(make_proxy, backends, tmp_path):
    a, b = backends["a"], backends["b"]
    z = make_proxy(_cfg(a, tmp_path))
    ok(z, "clusters", "add", "b", "--endpoint", b.addr)
    ok(z, "routes", "add", "--listener", "web", "--prefix", "/p/", "--cluster", "b")
    old = _pid(z)
    assert wait_until(lambda: _served_by(z, "/p/x", "b"), 1, 0.001)
    try:
        z.proc.send_signal(signal.SIGKILL)
        z.proc.wait(5)
        # zproxyd is gone; its data plane keeps serving the last snapshot.
        t_end = time.monotonic() + 2
        while time.monotonic() < t_end:
            assert _alive(old)
            assert _served_by(z, "/p/x", "b") and _served_by(z, "/", "a")
            time.sleep(0.05)
        z.start(extra_args=["--no-adopt"])  # ready at once: the orphan still answers
        assert wait_until(lambda: run(z, "status").returncode == 0, 10)
        new = _pid(z)
        assert new != old
        # The new zproxyd joined the orphan's ports, started its own data plane and told
        # the orphan to drain; dynamic routes come back from state_dir.
        assert wait_until(lambda: not _alive(old), 15), z.stderr()
        assert "takeover: adopted 1 listen socket(s) from orphaned data plane pid %d" % old \
            in z.stderr(), z.stderr()
        assert "orphaned data plane pid %d drains" % old in z.stderr()
        assert wait_until(lambda: _served_by(z, "/p/x", "b"), 2, 0.01)
        assert jsonout(z, "status")["config_source"] == "state"
        ok(z, "routes", "add", "--listener", "web", "--prefix", "/q/", "--cluster", "b")
        assert wait_until(lambda: _served_by(z, "/q/x", "b"), 1, 0.001)
        assert _pid(z) == new
    finally:
        if _alive(old):
            os.kill(old, signal.SIGKILL)
