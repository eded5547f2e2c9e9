"""True adoption: zproxyd dies (SIGKILL), its data plane keeps serving, and the NEW zproxyd
adopts that very process instead of starting a second one: same pid, one data plane on the
ports, /metrics answers, Admin API changes and active health reach it, config changed while
zproxyd was down is resynced, and if the adopted data plane dies the new zproxyd restarts it
on the same sockets. Real processes and clients throughout (wrk, zproxyctl, HTTP)."""

import copy
import os
import re
import signal
import subprocess
import time

import pytest

import httpraw
import machine
import yamlgen
from conftest import catch_all, cluster, listener
from ctl import jsonout, ok
from procs import NO_BPF, base_config, dataplane_restarted, free_port, wait_until
from test_dataplane_sync import _alive, _pid, _served_by
from test_health import HEALTH, KillableBackend, health_backing


def _cfg(tmp_path, *clusters, **top):
    top.setdefault("state_dir", str(tmp_path / "state"))
    return base_config([listener("web", catch_all(clusters[0]["name"]))], list(clusters), **top)


def _kill_zproxyd(z):
    z.proc.send_signal(signal.SIGKILL)
    z.proc.wait(5)


def _adopted(z, pid, timeout=10):
    """Waits for the new zproxyd's adoption of `pid` (log line + Admin API status)."""
    assert wait_until(lambda: "adoption: data plane pid %d adopted" % pid in z.stderr(), timeout,
                      0.02), z.stderr()[-4000:]
    assert wait_until(lambda: ok(z, "status") and _pid(z) == pid, 5), z.stderr()[-3000:]


def _wrk(port, seconds, conns=20):
    return subprocess.Popen(["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds,
                             "http://127.0.0.1:%d/" % port],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wrk_result(w):
    out = w.communicate(timeout=60)[0]
    print(out)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = dict(zip(("connect", "read", "write", "timeout"),
                      map(int, m.groups()))) if m else {"connect": 0, "read": 0, "write": 0,
                                                        "timeout": 0}
    non2xx = int(re.search(r"Non-2xx or 3xx responses: (\d+)", out).group(1)) \
        if "Non-2xx" in out else 0
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return requests, errors, non2xx, out


def test_sigkill_zproxyd_under_load_then_adopt(make_proxy, backends, tmp_path, capsys):
    a, b = backends["a"], backends["b"]
    # The adopted data plane is killed on purpose at the end.
    z = make_proxy(_cfg(tmp_path, cluster("a", a.addr)),
                   allow_stderr=(dataplane_restarted("exited (adopted: no exit status)"),))
    dp = _pid(z)
    w = _wrk(z.port, 5)
    try:
        time.sleep(0.7)
        t_kill = time.monotonic()
        _kill_zproxyd(z)
        time.sleep(0.5)
        t_start = time.monotonic()
        z.start()
        _adopted(z, dp)
        t_adopted = time.monotonic()
        requests, errors, non2xx, out = _wrk_result(w)
    finally:
        if w.poll() is None:
            w.kill()
    line = [l for l in z.stderr().splitlines() if "adoption: data plane pid %d adopted" % dp in l]
    with capsys.disabled():
        print("\nadoption under wrk -t1 -c20 -d5s: %d requests, socket errors %s, non-2xx %d; "
              "zproxyd down %.2f s; start -> adopted (polled) %.0f ms; zproxyd log: %s"
              % (requests, errors, non2xx, t_start - t_kill, (t_adopted - t_start) * 1000,
                 line[0].split("info: ", 1)[1] if line else "?"))
    assert sum(errors.values()) == 0 and non2xx == 0, out
    assert requests > 1000, out

    # The same process serves: no second data plane, none started by the new zproxyd.
    assert _alive(dp)
    assert jsonout(z, "status").get("dataplane_adopted") is True
    assert "%d (adopted)" % dp in ok(z, "status").stdout
    assert z.serving_dataplanes() == [dp]
    assert z.dataplane_pids() == []  # not its child, and it started none
    assert "drains" not in z.stderr().split("adoption: data plane pid %d (config" % dp)[-1]
    # Its /metrics still answers.
    r = httpraw.request(z.metrics_port, target="/metrics")
    assert r.status == 200 and b"zproxy_requests_total" in r.body

    # An Admin API route change made after adoption is served by the adopted data plane.
    ok(z, "clusters", "add", "b", "--endpoint", b.addr)
    ok(z, "routes", "add", "--listener", "web", "--prefix", "/after/", "--cluster", "b")
    assert wait_until(lambda: _served_by(z, "/after/x", "b"), 2, 0.005)
    out = subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/after/x" % z.port],
                         capture_output=True, text=True, timeout=10)
    assert "from b" in out.stdout, out
    assert _pid(z) == dp and z.serving_dataplanes() == [dp]

    # Killing the adopted data plane: the new zproxyd restarts it on the same sockets,
    # no connection is refused (only in-flight requests may fail).
    w = _wrk(z.port, 3)
    try:
        time.sleep(0.7)
        os.kill(dp, signal.SIGKILL)
        requests, errors, non2xx, out = _wrk_result(w)
    finally:
        if w.poll() is None:
            w.kill()
    assert errors["connect"] == 0, out
    assert requests > 500, out
    assert wait_until(lambda: len(z.dataplane_pids()) == 1, 5)
    new = z.dataplane_pids()[0]
    assert new != dp and z.serving_dataplanes() == [new]
    assert "data plane pid %d exited (adopted: no exit status)" % dp in z.stderr()
    assert wait_until(lambda: _served_by(z, "/after/x", "b"), 3, 0.01)  # state kept
    assert _pid(z) == new
    assert not jsonout(z, "status").get("dataplane_adopted", False)


@pytest.mark.parametrize("backing", ["bpf_map", "memfd"])
def test_active_health_reaches_the_adopted_dataplane(make_proxy, tmp_path, backing):
    if backing == "bpf_map":
        machine.skip_unless("bpf", "bpffs")
    wrapper = NO_BPF if backing == "memfd" else ()
    a = KillableBackend("adopt-a", str(tmp_path))
    b = KillableBackend("adopt-b", str(tmp_path))
    try:
        z = make_proxy(_cfg(tmp_path, cluster("app", a.addr, b.addr, health_check=dict(HEALTH))),
                       wrapper=wrapper)
        dp = _pid(z)
        assert health_backing(z) == backing
        _kill_zproxyd(z)
        z.start()
        _adopted(z, dp)
        assert "adoption: health re-attached to %s" % (
            "the BPF map zproxy_health" if backing == "bpf_map" else "a new memfd region") \
            in z.stderr()
        assert health_backing(z) == backing
        bodies = {httpraw.request(z.port).body for _ in range(6)}
        assert bodies == {b"hello from adopt-a\n", b"hello from adopt-b\n"}, bodies

        b.kill()  # the new zproxyd's checker notices; the adopted data plane must follow
        assert wait_until(lambda: "endpoint %s is now unhealthy" % b.addr in z.stderr(), 3, 0.02)
        for i in range(40):
            r = httpraw.request(z.port)
            assert r.status == 200 and r.body == b"hello from adopt-a\n", (i, r)
        assert _pid(z) == dp and z.serving_dataplanes() == [dp]
    finally:
        a.stop()
        b.stop()


def test_down_endpoint_stays_down_across_adoption(make_proxy, tmp_path):
    """The new zproxyd inherits the adopted data plane's verdicts: an endpoint that was down
    when zproxyd died gets no traffic while the new checker re-probes it."""
    a = KillableBackend("keep-a", str(tmp_path))
    b = KillableBackend("keep-b", str(tmp_path))
    try:
        slow = dict(HEALTH, interval_ms=2000, unhealthy_threshold=3)
        z = make_proxy(_cfg(tmp_path, cluster("app", a.addr, b.addr, health_check=slow)))
        dp = _pid(z)
        b.kill()
        assert wait_until(lambda: "endpoint %s is now unhealthy" % b.addr in z.stderr(), 10, 0.05)
        _kill_zproxyd(z)
        z.start()
        _adopted(z, dp)
        assert "health: kept 2 of 2 slot(s)" in z.stderr()
        # With a fresh start b would count as healthy for 3 probes x 2 s.
        for i in range(30):
            r = httpraw.request(z.port)
            assert r.status == 200 and r.body == b"hello from keep-a\n", (i, r)
    finally:
        a.stop()
        b.stop()


def test_config_changed_while_zproxyd_was_down_is_resynced(make_proxy, backends, tmp_path):
    """The file changed while zproxyd was down: the file wins (docs/admin-api.md, precedence)
    with a new version; the adopted data plane reports the old one in its Hello and is
    resynced."""
    a, b = backends["a"], backends["b"]
    z = make_proxy(_cfg(tmp_path, cluster("a", a.addr)))
    dp = _pid(z)
    v1 = int(jsonout(z, "status")["config_version"])
    _kill_zproxyd(z)
    cfg = copy.deepcopy(z.config)
    cfg["clusters"].append(cluster("b", b.addr))
    cfg["listeners"][0]["routes"].insert(0, {"match": {"prefix": "/new/"}, "cluster": "b"})
    with open(z.config_path, "w") as f:
        f.write(yamlgen.dump(cfg))
    z.start()
    _adopted(z, dp)
    v2 = int(jsonout(z, "status")["config_version"])
    assert v2 > v1
    assert wait_until(lambda: _served_by(z, "/new/x", "b"), 3, 0.01), z.stderr()[-3000:]
    assert "resync: data plane pid %d serves config version %d (it reported %d)" % (dp, v2, v1) \
        in z.stderr()
    r = httpraw.request(z.metrics_port, target="/metrics")
    assert ("zproxy_config_version %d" % v2).encode() in r.body
    assert _pid(z) == dp and z.serving_dataplanes() == [dp]


def test_listener_added_while_down_hands_over_after_adoption(make_proxy, backends, tmp_path):
    """The adopted data plane cannot serve a new listener in place: zproxyd says so, hands
    over to a new data plane (fresh socket for the new listener, the adopted one's sockets
    for the rest) and the adopted one drains."""
    a = backends["a"]
    z = make_proxy(_cfg(tmp_path, cluster("a", a.addr)))
    dp = _pid(z)
    _kill_zproxyd(z)
    cfg = copy.deepcopy(z.config)
    extra = listener("extra", catch_all("a"))
    extra["address"] = "127.0.0.1:%d" % free_port()
    cfg["listeners"].append(extra)
    with open(z.config_path, "w") as f:
        f.write(yamlgen.dump(cfg))
    z.start()
    assert wait_until(lambda: "cannot take config version" in z.stderr(), 10, 0.05), \
        z.stderr()[-3000:]
    assert "handing over to a new data plane; pid %d drains" % dp in z.stderr()
    assert wait_until(lambda: not _alive(dp), 15), z.stderr()[-3000:]
    new = _pid(z)
    assert new != dp and z.dataplane_pids() == [new]
    port = int(extra["address"].rsplit(":", 1)[1])
    assert wait_until(lambda: _served_by(z, "/", "a", port=port), 3, 0.01)
    assert _served_by(z, "/", "a")


def test_dataplane_dead_before_zproxyd_returns_starts_fresh(make_proxy, backends, tmp_path):
    a = backends["a"]
    z = make_proxy(_cfg(tmp_path, cluster("a", a.addr)))
    dp = _pid(z)
    _kill_zproxyd(z)
    os.kill(dp, signal.SIGKILL)
    assert wait_until(lambda: not _alive(dp), 5)
    z.start()
    new = _pid(z)
    assert new != dp and z.dataplane_pids() == [new]
    assert "adoption" not in z.stderr().split("data plane started: pid %d" % dp)[-1]
    assert _served_by(z, "/", "a")
