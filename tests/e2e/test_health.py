"""Active health checks end to end: zproxyd probes the endpoints, the data plane stops picking
an unhealthy one (no 502 for clients), /metrics shows every transition, a restarted backend
comes back, and a cluster with no healthy endpoint answers 503. Every test runs with both
health backings: the pinned BPF map (default as root) and the memfd region (zproxyd started
without the BPF capabilities, which forces the fallback).

The backends here are this file's own zproxy-test-backend processes (killed and restarted),
never the shared fixtures."""

import os
import signal

import pytest
import subprocess
import time

import httpraw
import machine
import promtext
from conftest import catch_all, cluster, listener
from procs import NO_BPF, backend_path, base_config, free_port, stop_process, wait_until
from test_metrics import scrape

HEALTH = {"interval_ms": 200, "http_path": "/healthz", "timeout_ms": 200,
          "healthy_threshold": 1, "unhealthy_threshold": 2}


class KillableBackend:
    """zproxy-test-backend on a fixed port, so it can be killed and restarted in place."""

    def __init__(self, name, tmpdir, port=0):
        self.name = name
        self.tmpdir = tmpdir
        self.port = port
        self.proc = None
        self.start()

    def start(self):
        log = os.path.join(self.tmpdir, "hc-backend-%s.log" % self.name)
        err = open(os.path.join(self.tmpdir, "hc-backend-%s.stderr" % self.name), "ab")
        self.proc = subprocess.Popen(
            [backend_path(), "--listen", "127.0.0.1:%d" % self.port, "--name", self.name,
             "--log", log], stdout=subprocess.PIPE, stderr=err, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("backend %s did not start: %r" % (self.name, line))
        self.port = int(line.split()[-1].rsplit(":", 1)[1])

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self):
        stop_process(self.proc, 5)


def health_gauges(z):
    r = httpraw.request(z.metrics_port, target="/metrics")
    assert r.status == 200, r
    fam = promtext.parse(r.body.decode()).get("zproxy_upstream_healthy")
    assert fam is not None, "zproxy_upstream_healthy missing from /metrics"
    return {l["endpoint"]: v for _, l, v in fam.samples if l.get("cluster") == "app"}


def wait_health(z, endpoint, value, timeout):
    """Seconds until /metrics shows `endpoint` with `value` (fails after `timeout`)."""
    t0 = time.monotonic()
    ok = wait_until(lambda: health_gauges(z).get(endpoint) == value, timeout, 0.02)
    assert ok, "%s not %s within %.1fs: %r\n%s" % (endpoint, value, timeout, health_gauges(z),
                                                  z.stderr()[-3000:])
    return time.monotonic() - t0


def _proxy(make_proxy, endpoints, health=HEALTH, wrapper=()):
    cfg = base_config([listener("web", catch_all("app"))],
                      [cluster("app", *endpoints, health_check=dict(health))])
    return make_proxy(cfg, wrapper=wrapper)


def health_backing(z):
    """Which region the data plane reads: zproxy_dataplane_info{health_region}."""
    r = httpraw.request(z.metrics_port, target="/metrics")
    info = promtext.parse(r.body.decode())["zproxy_dataplane_info"].samples[0][1]
    return info["health_region"]


def bpf_available():
    """The machine (canary) has what the BPF health map needs: a zproxy that still uses
    the memfd region then fails health_backing's check."""
    return machine.has("bpf") and machine.has("bpffs")


@pytest.fixture(params=["bpf_map", "memfd"])
def backing(request):
    """The health backing a test runs with; the memfd fallback is forced with NO_BPF."""
    if request.param == "bpf_map":
        machine.skip_unless("bpf", "bpffs")
    return request.param


def _wrapper(backing):
    return NO_BPF if backing == "memfd" else ()


def test_killed_backend_is_taken_out_and_comes_back(make_proxy, tmp_path, backing):
    a = KillableBackend("hc-a", str(tmp_path))
    b = KillableBackend("hc-b", str(tmp_path))
    try:
        z = _proxy(make_proxy, [a.addr, b.addr], wrapper=_wrapper(backing))
        assert health_backing(z) == backing
        if backing == "memfd":
            # The fallback is announced once, with the reason.
            lines = [l for l in z.stderr().splitlines() if "BPF health map unavailable" in l]
            assert len(lines) == 1 and "memfd" in lines[0], z.stderr()
        assert health_gauges(z) == {a.addr: 1, b.addr: 1}
        seen = {httpraw.request(z.port).body for _ in range(4)}
        assert seen == {b"hello from hc-a\n", b"hello from hc-b\n"}

        b.kill()
        took = wait_health(z, b.addr, 0, 3.0)
        # 2 failed probes 200 ms (+-10%) apart; refused connects fail at once.
        assert took < 1.2, "detection took %.2fs" % took
        assert health_gauges(z)[a.addr] == 1
        for i in range(50):
            r = httpraw.request(z.port)
            assert r.status == 200, "request %d after the kill: %r" % (i, r)
            assert r.body == b"hello from hc-a\n", "request %d: %r" % (i, r.body)
        assert "endpoint %s is now unhealthy" % b.addr in z.stderr()

        b.start()  # same port
        took = wait_health(z, b.addr, 1, 3.0)
        assert took < 1.2, "recovery took %.2fs" % took
        bodies = [httpraw.request(z.port).body for _ in range(10)]
        assert bodies.count(b"hello from hc-b\n") >= 4, bodies
        assert "endpoint %s is now healthy" % b.addr in z.stderr()
    finally:
        a.stop()
        b.stop()


def test_all_unhealthy_is_503_no_healthy_upstream(make_proxy, backing):
    dead = ["127.0.0.1:%d" % free_port(), "127.0.0.1:%d" % free_port()]
    z = _proxy(make_proxy, dead, wrapper=_wrapper(backing))
    assert health_backing(z) == backing
    for d in dead:
        wait_health(z, d, 0, 3.0)
    r = httpraw.request(z.port)
    assert r.status == 503, r
    assert b"no healthy upstream" in r.body
    # Panic mode (spread over all endpoints when none is healthy) is not implemented: the
    # 503 is the documented behaviour until then.


def test_http_check_uses_the_status_not_just_the_connect(make_proxy, tmp_path, backing):
    a = KillableBackend("hc-status", str(tmp_path))
    try:
        # The backend is up, but its answer to the check path is a 503: not healthy.
        z = _proxy(make_proxy, [a.addr], dict(HEALTH, http_path="/status/503"),
                   wrapper=_wrapper(backing))
        wait_health(z, a.addr, 0, 3.0)
        r = httpraw.request(z.port)
        assert r.status == 503 and b"no healthy upstream" in r.body, r
    finally:
        a.stop()


def test_expected_statuses_accepts_listed_status(make_proxy, tmp_path, backing):
    a = KillableBackend("hc-expected", str(tmp_path))
    try:
        z = _proxy(make_proxy, [a.addr],
                   dict(HEALTH, http_path="/status/503", expected_statuses=[200, 503]),
                   wrapper=_wrapper(backing))
        time.sleep(0.8)  # several probes, all answered 503, which is expected here
        assert health_gauges(z) == {a.addr: 1}
        assert httpraw.request(z.port).status == 200
    finally:
        a.stop()


def test_panic_mode_serves_when_every_endpoint_fails_its_check(make_proxy, backends, backing):
    # The health check asks for a path that answers 500, so both endpoints go unhealthy
    # while they still serve real traffic. Without panic mode that is a 503; with
    # panic_threshold_percent the proxy spreads over all endpoints anyway.
    bad_check = dict(HEALTH, http_path="/status/500")
    eps = [backends["a"].addr, backends["b"].addr]
    for panic, want in ((0, 503), (50, 200)):
        cfg = base_config([listener("web", catch_all("app"))],
                          [cluster("app", *eps, health_check=bad_check,
                                   panic_threshold_percent=panic)])
        z = make_proxy(cfg, wrapper=_wrapper(backing))
        for e in eps:
            wait_health(z, e, 0, 3.0)
        statuses = {httpraw.request(z.port).status for _ in range(6)}
        assert statuses == {want}, (panic, statuses)
        if panic:
            assert scrape(z)["zproxy_upstream_panic_total"].value() >= 6
        z.stop()
