"""Upstream failures: refused connects, retry on another endpoint, connect and read timeouts."""

import socket
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


class Blackhole:
    """A local listener whose accept queue is full, so the kernel drops further SYNs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(s)
        time.sleep(0.1)

    def drops_syns(self):
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", self.port))
            return False
        except socket.timeout:
            return True
        except OSError:
            return False
        finally:
            s.close()

    def close(self):
        for s in self.fillers:
            s.close()
        self.sock.close()


def test_connect_timeout(make_proxy):
    bh = Blackhole()
    try:
        if not bh.drops_syns():
            pytest.xfail("could not make a local listener that drops SYNs on this kernel")
        z = _proxy(make_proxy, ["127.0.0.1:%d" % bh.port], connect_timeout_ms=300)
        t0 = time.monotonic()
        r = httpraw.request(z.port, timeout=10)
        took = time.monotonic() - t0
        assert r.status in (502, 504), r
        assert b"timeout" in r.body.lower() or b"connect" in r.body.lower(), r.body
        assert took < 3, "connect_timeout_ms=300 took %.1fs" % took
    finally:
        bh.close()


def test_read_timeout_is_504(make_proxy, backends):
    z = _proxy(make_proxy, [backends["a"].addr], read_timeout_ms=300)
    t0 = time.monotonic()
    r = httpraw.request(z.port, target="/slow/2000", timeout=10)
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert b"timeout" in r.body.lower()
    assert took < 1.8, "read_timeout_ms=300 took %.1fs" % took
