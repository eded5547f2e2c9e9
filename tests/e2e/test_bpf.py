"""zproxyd's BPF surface, inspected the way an operator would: with bpftool.

A real zproxyd with two workers: steering is the eBPF program (one log line), the maps are
pinned under bpffs_path with BTF, `bpftool map dump pinned ... -j` shows named fields,
`bpftool prog show` lists the programs by name, traffic flows, and a clean shutdown
removes the pins. Health verdicts are read back through bpftool (zproxy_health and the
slot names in zproxy_health_names) while traffic avoids the endpoint marked down. Needs root
and bpffs (skipped otherwise).
"""

import json
import os
import subprocess

import pytest

from conftest import _finish, _live_proxies, catch_all, cluster, listener
import ctl
import httpraw
import machine
import yamlgen
from httpraw import Conn, build_request
from procs import Zproxy, base_config, wait_until
from test_health import HEALTH, KillableBackend

BPFTOOL = "/usr/sbin/bpftool"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(BPFTOOL, os.X_OK), reason="needs root and bpftool")


def bpftool(*args):
    out = subprocess.run([BPFTOOL, "-j"] + list(args), capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 0, "bpftool %s: %s" % (" ".join(args), out.stderr)
    return json.loads(out.stdout)


def entries(dump):
    """bpftool -j map dump -> [(key, value)], with BTF-formatted fields when present
    (bpftool puts them beside the raw bytes under "formatted"); per-CPU values stay
    lists of {"cpu", "value"}."""
    out = []
    for e in dump:
        f = e.get("formatted", e)
        out.append((f["key"], f.get("value", f.get("values"))))
    return out


@pytest.fixture
def bpf_proxy(backends, session_dir, request):
    cfg = base_config(listeners=[listener("web", catch_all("a"))],
                      clusters=[cluster("a", backends["a"].addr)], workers=2)
    z = Zproxy(cfg, session_dir, name="bpf")
    _live_proxies.append(z)
    if not z.config["bpffs_path"].startswith("/sys/fs/bpf/"):
        _finish(z, request)
        machine.fallback("bpffs", "pins in %s" % z.config["bpffs_path"])
    yield z
    if z in _live_proxies:
        _finish(z, request)


def test_steering_is_ebpf_and_traffic_flows(bpf_proxy):
    assert "steering: eBPF sk_reuseport program zproxy_steer" in bpf_proxy.stderr()
    for _ in range(10):
        with Conn(bpf_proxy.port) as c:
            c.send(build_request(target="/"))
            assert c.read_response().status == 200
    pin = bpf_proxy.config["bpffs_path"] + "/steer/web"
    steering = dict(entries(bpftool("map", "dump", "pinned", pin + "/zproxy_steering")))
    # Two workers on CPUs 0 and 1 (the affinity mask of the test run permitting).
    assert set(steering.values()) <= {0, 1} and steering[0] == 0
    [(_, cfg)] = entries(bpftool("map", "dump", "pinned", pin + "/zproxy_steer_cfg"))
    assert cfg == {"mode": 0, "num_workers": 2}
    [(_, per_cpu)] = entries(bpftool("map", "dump", "pinned", pin + "/zproxy_steer_stats"))
    steered = sum(c["value"]["steered"] for c in per_cpu)
    fallback = sum(c["value"]["no_worker"] + c["value"]["select_failed"] for c in per_cpu)
    assert steered >= 10 and fallback == 0


def test_maps_dump_with_named_fields(bpf_proxy):
    base = bpf_proxy.config["bpffs_path"]
    [(key, per_cpu)] = entries(bpftool("map", "dump", "pinned", base + "/zproxy_counters"))
    assert key == 0
    assert set(per_cpu[0]["value"]) == {"spliced_bytes", "spliced_packets", "redirect_errors",
                                        "no_peer"}
    [(_, health)] = entries(bpftool("map", "dump", "pinned", base + "/zproxy_health"))
    assert health["header"]["magic"] == 0x5248505a
    assert health["header"]["slot_count"] == len(health["health"]) == 4096
    assert set(health["health"]) == {1}
    # No cluster of this proxy has a health_check: no slot is assigned.
    assert entries(bpftool("map", "dump", "pinned", base + "/zproxy_health_names")) == []
    assert entries(bpftool("map", "dump", "pinned", base + "/zproxy_pair_peer")) == []
    info = bpftool("map", "show", "pinned", base + "/zproxy_splice_pairs")
    assert info["type"] == "sockhash"
    # The peer table holds the peer sockets themselves: the kernel empties it on close.
    assert bpftool("map", "show", "pinned", base + "/zproxy_pair_peer")["type"] == "sockhash"


def test_programs_listed_by_name_and_unpinned_on_shutdown(bpf_proxy):
    names = {p.get("name") for p in bpftool("prog", "show")}
    assert {"zproxy_steer", "zproxy_splice"} <= names
    base = bpf_proxy.config["bpffs_path"]
    assert os.path.exists(base + "/zproxy_splice")
    assert os.path.exists(base + "/steer/web/zproxy_steer")
    assert bpf_proxy.stop() == 0  # the fixture's _finish checks stderr and cleans up
    left = [os.path.join(d, f) for d, _, fs in os.walk(base) for f in fs]
    assert left == [], "pins left after a clean shutdown: %s" % left


def health_by_endpoint(base):
    """{address: state} read the way an operator would: slot names, then slot bytes."""
    names = {k: v for k, v in entries(bpftool("map", "dump", "pinned",
                                              base + "/zproxy_health_names"))}
    [(_, region)] = entries(bpftool("map", "dump", "pinned", base + "/zproxy_health"))
    return {v["address"]: region["health"][slot] for slot, v in names.items()
            if v["cluster"] == "app"}


def test_health_transitions_show_in_bpftool_while_traffic_avoids_the_down_endpoint(
        session_dir, request, tmp_path):
    a = KillableBackend("bpf-hc-a", str(tmp_path))
    b = KillableBackend("bpf-hc-b", str(tmp_path))
    cfg = base_config([listener("web", catch_all("app"))],
                      [cluster("app", a.addr, b.addr, health_check=dict(HEALTH))])
    z = Zproxy(cfg, session_dir, name="bpf-health")
    _live_proxies.append(z)
    try:
        if not z.config["bpffs_path"].startswith("/sys/fs/bpf/"):
            machine.fallback("bpffs", "pins in %s" % z.config["bpffs_path"])
        base = z.config["bpffs_path"]
        assert "health: reading the BPF map zproxy_health" in z.stderr()
        assert health_by_endpoint(base) == {a.addr: 1, b.addr: 1}

        b.kill()
        assert wait_until(lambda: health_by_endpoint(base) == {a.addr: 1, b.addr: 0}, 3, 0.05), \
            health_by_endpoint(base)
        for i in range(30):
            r = httpraw.request(z.port)
            assert r.status == 200 and r.body == b"hello from bpf-hc-a\n", (i, r)

        b.start()  # same port
        assert wait_until(lambda: health_by_endpoint(base) == {a.addr: 1, b.addr: 1}, 3, 0.05), \
            health_by_endpoint(base)
        bodies = {httpraw.request(z.port).body for _ in range(6)}
        assert b"hello from bpf-hc-b\n" in bodies, bodies
    finally:
        a.stop()
        b.stop()
        if z in _live_proxies:
            _finish(z, request)


def _bpf_proxy(cfg, session_dir, name):
    z = Zproxy(cfg, session_dir, name=name)
    _live_proxies.append(z)
    if not z.config["bpffs_path"].startswith("/sys/fs/bpf/"):
        machine.fallback("bpffs", "pins in %s" % z.config["bpffs_path"])
    return z


def test_keep_pins_leaves_them_for_the_next_zproxyd(backends, session_dir, request):
    cfg = base_config(listeners=[listener("web", catch_all("a"))],
                      clusters=[cluster("a", backends["a"].addr)], workers=2,
                      bpf={"keep_pins": True})
    z = _bpf_proxy(cfg, session_dir, "bpf-keep")
    base = z.config["bpffs_path"]
    try:
        assert z.stop() == 0
        assert not z.bad_stderr_lines()
        for pin in ("zproxy_health", "zproxy_splice_pairs", "zproxy_pair_peer", "zproxy_splice",
                    "steer/web/zproxy_steer", "steer/web/zproxy_steering"):
            assert os.path.exists(os.path.join(base, pin)), pin
        # bpftool still reads them with zproxyd gone.
        [(_, health)] = entries(bpftool("map", "dump", "pinned", base + "/zproxy_health"))
        assert health["header"]["magic"] == 0x5248505a

        # The next zproxyd on the same bpffs_path reuses them, serves, and (keep_pins off)
        # removes them on its clean shutdown.
        cfg2 = dict(z.config)
        cfg2.pop("bpf")
        for k in ("admin_address", "state_dir"):
            cfg2.pop(k)
        z2 = Zproxy(cfg2, session_dir, name="bpf-keep-2")
        _live_proxies.append(z2)
        assert "zproxy_health (pinned in %s, reused)" % base in z2.stderr()
        with Conn(z2.port) as c:
            c.send(build_request(target="/"))
            assert c.read_response().status == 200
        assert z2.stop() == 0
        left = [os.path.join(d, f) for d, _, fs in os.walk(base) for f in fs]
        assert left == [], "pins left after a clean shutdown without keep_pins: %s" % left
        _live_proxies.remove(z2)
        z2.cleanup()
    finally:
        if z in _live_proxies:
            _live_proxies.remove(z)
        z.cleanup()


def test_hash_steering_policy(backends, session_dir, request):
    cfg = base_config(listeners=[listener("web", catch_all("a"))],
                      clusters=[cluster("a", backends["a"].addr)], workers=2,
                      bpf={"steering": "hash"})
    z = _bpf_proxy(cfg, session_dir, "bpf-hash")
    try:
        assert "steering: eBPF sk_reuseport program zproxy_steer (by 4-tuple hash)" in z.stderr()
        pin = z.config["bpffs_path"] + "/steer/web"
        [(_, steer_cfg)] = entries(bpftool("map", "dump", "pinned", pin + "/zproxy_steer_cfg"))
        assert steer_cfg == {"mode": 1, "num_workers": 2}
        for _ in range(20):
            with Conn(z.port) as c:
                c.send(build_request(target="/"))
                assert c.read_response().status == 200
        [(_, per_cpu)] = entries(bpftool("map", "dump", "pinned", pin + "/zproxy_steer_stats"))
        assert sum(c["value"]["steered"] for c in per_cpu) >= 20
    finally:
        if z in _live_proxies:
            _finish(z, request)


def test_bpffs_is_mounted_where_it_is_missing(backends, session_dir, request, tmp_path):
    """bpffs_path outside /sys/fs/bpf on a plain directory: zproxyd mounts bpffs there."""
    target = str(tmp_path / "bpffs")
    cfg = base_config(listeners=[listener("web", catch_all("a"))],
                      clusters=[cluster("a", backends["a"].addr)], workers=2,
                      bpffs_path=target)
    z = Zproxy(cfg, session_dir, name="bpf-mount")
    _live_proxies.append(z)
    try:
        mounts = [line.split() for line in open("/proc/self/mounts")]
        assert [m for m in mounts if m[1] == target and m[2] == "bpf"], "bpffs not mounted"
        assert os.path.exists(target + "/zproxy_health")
        assert "steering: eBPF" in z.stderr()
        r = httpraw.request(z.port)
        assert r.status == 200
    finally:
        if z in _live_proxies:
            _finish(z, request)
        subprocess.run(["umount", target], capture_output=True)


def test_bpf_block_cannot_change_at_run_time(backends, session_dir, request, tmp_path):
    cfg = base_config(listeners=[listener("web", catch_all("a"))],
                      clusters=[cluster("a", backends["a"].addr)])
    z = Zproxy(cfg, session_dir, name="bpf-fixed")
    _live_proxies.append(z)
    try:
        new = dict(z.config)
        new["bpf"] = {"keep_pins": True}
        path = tmp_path / "keep.yaml"
        path.write_text(yamlgen.dump(new))
        r = ctl.run(z, "config", "apply", str(path))
        assert r.returncode == 1 and "bpf: cannot change at run time" in r.stderr, r.stderr
        # The old config still serves.
        assert httpraw.request(z.port).status == 200
    finally:
        if z in _live_proxies:
            _finish(z, request)
