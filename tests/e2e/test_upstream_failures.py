"""Upstream failures: refused connects, retry on another endpoint, connect and read timeouts."""

import os
import shutil
import socket
import subprocess
import time

import pytest

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config, free_port


def _proxy(make_proxy, endpoints, **kw):
    cfg = base_config([listener("web", catch_all("app"))], [cluster("app", *endpoints, **kw)])
    return make_proxy(cfg)


def test_dead_upstream_is_502_naming_connect(make_proxy):
    z = _proxy(make_proxy, ["127.0.0.1:%d" % free_port()])
    r = httpraw.request(z.port)
    assert r.status == 502, r
    assert b"connect" in r.body.lower()


def test_retry_once_on_another_endpoint(make_proxy, backends):
    z = _proxy(make_proxy, ["127.0.0.1:%d" % free_port(), backends["a"].addr])
    for i in range(10):
        r = httpraw.request(z.port)
        assert r.status == 200, "request %d: %r" % (i, r)
        assert r.body == b"hello from a\n"


# A loopback address of its own for the black hole, so the drop rule can match nothing else.
BLACKHOLE_ADDR = "127.66.0.1"


@pytest.fixture
def syn_blackhole():
    """An address:port on loopback whose SYNs the kernel silently drops: an nftables table of
    this test's own with one rule in the input hook (a SYN sent over lo comes back in there;
    dropped, it gets neither a SYN-ACK nor a RST, like a firewalled host). The table is
    deleted when the test ends, failed or not."""
    nft = shutil.which("nft")
    if nft is None:
        pytest.skip("needs nft (Debian nftables: tools/install-deps installs it)")
    port = free_port(BLACKHOLE_ADDR)
    table = "zproxy_e2e_blackhole_%d_%d" % (os.getpid(), port)
    rules = ("table ip %s {\n chain input {\n  type filter hook input priority -300; "
             "policy accept;\n  ip daddr %s tcp dport %d drop\n }\n}\n"
             % (table, BLACKHOLE_ADDR, port))
    r = subprocess.run([nft, "-f", "-"], input=rules, capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        pytest.skip("machine lacks nftables (nft -f: %s)" % r.stderr.strip())
    try:
        # The net itself must hold: a connect there neither succeeds nor is refused.
        with socket.socket() as s:
            s.settimeout(0.5)
            with pytest.raises(socket.timeout):
                s.connect((BLACKHOLE_ADDR, port))
        yield "%s:%d" % (BLACKHOLE_ADDR, port)
    finally:
        subprocess.run([nft, "delete", "table", "ip", table], timeout=10, check=True)


def test_connect_timeout_is_504(make_proxy, syn_blackhole):
    """docs/configuration.md: a cluster's connect timeout is a 504 with a body naming it (a
    connect failure is a 502)."""
    z = _proxy(make_proxy, [syn_blackhole], connect_timeout_ms=300)
    t0 = time.monotonic()
    r = httpraw.request(z.port, timeout=10)
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert r.body == b"zproxy: upstream connect timeout\n", r.body
    assert 0.3 <= took < 3, "connect_timeout_ms=300 took %.1fs" % took


def test_read_timeout_is_504(make_proxy, backends):
    z = _proxy(make_proxy, [backends["a"].addr], read_timeout_ms=300)
    t0 = time.monotonic()
    r = httpraw.request(z.port, target="/slow/2000", timeout=10)
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert b"timeout" in r.body.lower()
    assert took < 1.8, "read_timeout_ms=300 took %.1fs" % took
