"""CONNECT to host names through real DNS: zproxyd runs in its own mount namespace whose
/etc/resolv.conf points at a fake DNS server (fake_dns.py) the test controls, so getaddrinfo
in the data plane really sends queries, and answers can be slow, dual-stack or missing.
Checked: addresses tried in order (a refused ::1, then 127.0.0.1), IP patterns filtering the
addresses, the cache and its expiry (queries seen by the server), a worker serving other
requests while a lookup is pending, a lookup slower than connect_timeout_ms -> 504 (and its
late answer harmless), a full resolver queue -> 503 with the rest coalesced into one lookup,
a client gone before the answer -> nothing connected, bytes and a FIN sent during the lookup
forwarded once connected."""

import socket
import threading
import time

import pytest

from conftest import catch_all, cluster, listener
from fake_dns import FakeDns
from procs import base_config, wait_until
from test_connect import Echo, _body, _read_head, _recv_exact, _tunnel
from test_metrics import scrape


@pytest.fixture
def dns():
    d = FakeDns()
    yield d
    d.close()


def _proxy(make_proxy, backends, dns, allow, **connect):
    lst = listener("web", catch_all("a"))
    lst["connect"] = dict(allow=allow, **connect)
    return make_proxy(base_config([lst], [cluster("a", backends["a"].addr)]),
                      wrapper=dns.wrapper())


def _metric(z, family, **labels):
    return scrape(z)[family].value(**labels)


class CountingEcho(Echo):
    def __init__(self):
        self.accepted = 0
        super().__init__()

    def _handle(self, c):
        self.accepted += 1
        super()._handle(c)


def test_dual_stack_name_tries_the_next_address(make_proxy, backends, dns):
    echo = CountingEcho()  # on 127.0.0.1 only: ::1 refuses
    dns.add("dual.zproxy.test", a=["127.0.0.1"], aaaa=["::1"])
    z = _proxy(make_proxy, backends, dns, ["*.zproxy.test:%d" % echo.port])
    before = _metric(z, "zproxy_upstream_connects_total")
    s, head = _tunnel(z.port, "dual.zproxy.test:%d" % echo.port)
    with s:
        assert head.startswith("HTTP/1.1 200"), head
        s.sendall(b"dual")
        assert _recv_exact(s, 4) == b"dual"
    # getaddrinfo puts ::1 first (RFC 6724): refused, then 127.0.0.1.
    assert _metric(z, "zproxy_upstream_connects_total") == before + 2
    assert _metric(z, "zproxy_connect_requests_total", outcome="established") == 1
    assert _metric(z, "zproxy_connect_requests_total", outcome="refused") == 0
    assert dns.count("dual.zproxy.test", "A") == 1


def test_ip_patterns_filter_the_resolved_addresses(make_proxy, backends, dns):
    echo = CountingEcho()
    dns.add("dual.zproxy.test", a=["127.0.0.1"], aaaa=["::1"])
    dns.add("elsewhere.zproxy.test", a=["10.9.9.9"])
    # No name pattern: allowed for the addresses 127.0.0.1:* allows; ::1 is never tried.
    z = _proxy(make_proxy, backends, dns, ["127.0.0.1:*"])
    before = _metric(z, "zproxy_upstream_connects_total")
    s, head = _tunnel(z.port, "dual.zproxy.test:%d" % echo.port)
    with s:
        assert head.startswith("HTTP/1.1 200"), head
    assert _metric(z, "zproxy_upstream_connects_total") == before + 1
    # A name resolving only to addresses no pattern allows: 403 naming it, nothing connected.
    s, head = _tunnel(z.port, "elsewhere.zproxy.test:%d" % echo.port)
    with s:
        assert head.startswith("HTTP/1.1 403"), head
        assert b"elsewhere.zproxy.test resolves to no allowed address" in _body(s, head)
    assert _metric(z, "zproxy_upstream_connects_total") == before + 1
    assert echo.accepted == 1


def test_cache_and_its_expiry_seen_by_the_dns_server(make_proxy, backends, dns):
    echo = CountingEcho()
    dns.add("cached.zproxy.test", a=["127.0.0.1"])
    z = _proxy(make_proxy, backends, dns, ["cached.zproxy.test:*"], dns_cache_ms=700)
    for _ in range(3):
        s, head = _tunnel(z.port, "cached.zproxy.test:%d" % echo.port)
        with s:
            assert head.startswith("HTTP/1.1 200"), head
    assert dns.count("cached.zproxy.test", "A") == 1
    assert _metric(z, "zproxy_connect_dns_total", result="resolved") == 1
    assert _metric(z, "zproxy_connect_dns_total", result="cache_hit") == 2
    time.sleep(0.9)  # past dns_cache_ms: looked up again
    s, head = _tunnel(z.port, "cached.zproxy.test:%d" % echo.port)
    with s:
        assert head.startswith("HTTP/1.1 200"), head
    assert dns.count("cached.zproxy.test", "A") == 2
    assert _metric(z, "zproxy_dns_lookups_total", result="ok") == 2


def test_worker_keeps_serving_while_a_lookup_is_pending(make_proxy, backends, dns):
    echo = CountingEcho()
    dns.add("slow.zproxy.test", a=["127.0.0.1"], delay=1.5)
    z = _proxy(make_proxy, backends, dns, ["*.zproxy.test:*", "127.0.0.1:*"])  # workers: 1
    result = {}

    def slow_connect():
        start = time.monotonic()
        s, head = _tunnel(z.port, "slow.zproxy.test:%d" % echo.port)
        result["head"], result["took"] = head, time.monotonic() - start
        s.close()

    t = threading.Thread(target=slow_connect)
    t.start()
    assert wait_until(lambda: dns.count("slow.zproxy.test", "A") == 1, 3)
    # The only worker answers plain requests and IP CONNECTs while the lookup waits.
    start = time.monotonic()
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
        with s:
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_head(s).startswith("HTTP/1.1 200")
    s, head = _tunnel(z.port, "127.0.0.1:%d" % echo.port)
    with s:
        assert head.startswith("HTTP/1.1 200"), head
    assert time.monotonic() - start < 0.8, "requests waited for the lookup"
    assert "head" not in result, "the slow lookup answered too early"
    t.join(10)
    assert result["head"].startswith("HTTP/1.1 200"), result
    assert result["took"] >= 1.4, result


def test_lookup_slower_than_connect_timeout_is_504_and_its_late_answer_harmless(
        make_proxy, backends, dns):
    echo = CountingEcho()
    dns.add("slow.zproxy.test", a=["127.0.0.1"], delay=1.2)
    z = _proxy(make_proxy, backends, dns, ["slow.zproxy.test:*"], connect_timeout_ms=400)
    start = time.monotonic()
    s, head = _tunnel(z.port, "slow.zproxy.test:%d" % echo.port)
    took = time.monotonic() - start
    with s:
        assert head.startswith("HTTP/1.1 504"), head
        assert b"cannot resolve slow.zproxy.test: no answer within 400 ms" in _body(s, head)
        # The same connection still serves requests, also after the late answer came in.
        time.sleep(1.2)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_head(s).startswith("HTTP/1.1 200")
    assert 0.3 < took < 1.1, took
    assert echo.accepted == 0
    assert _metric(z, "zproxy_connect_dns_total", result="timeout") == 1
    assert _metric(z, "zproxy_connect_requests_total", outcome="timeout") == 1
    # The late answer was cached: the next CONNECT uses it without a lookup.
    s, head = _tunnel(z.port, "slow.zproxy.test:%d" % echo.port)
    with s:
        assert head.startswith("HTTP/1.1 200"), head
    assert dns.count("slow.zproxy.test", "A") == 1
    assert _metric(z, "zproxy_connect_dns_total", result="cache_hit") == 1


def test_full_resolver_queue_is_503_and_the_rest_share_one_lookup(make_proxy, backends, dns):
    echo = Echo()
    dns.add("busy.zproxy.test", a=["127.0.0.1"], delay=2.0)
    z = _proxy(make_proxy, backends, dns, ["busy.zproxy.test:*"])
    n = 300  # the resolver queues 256 names; one more is being looked up
    socks = []
    req = b"CONNECT busy.zproxy.test:%d HTTP/1.1\r\nHost: x\r\n\r\n" % echo.port
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", z.port), timeout=10)
        s.sendall(req)
        socks.append(s)
    heads = []
    for s in socks:
        with s:
            head = _read_head(s)
            heads.append(head)
            if head.startswith("HTTP/1.1 503"):
                assert b"too many host names being resolved" in _body(s, head)
    busy = sum(h.startswith("HTTP/1.1 503") for h in heads)
    ok = sum(h.startswith("HTTP/1.1 200") for h in heads)
    assert ok + busy == n, [h.split("\r\n")[0] for h in heads if not h.startswith("HTTP/1.1 ")]
    assert 40 <= busy <= n - 256, busy
    assert _metric(z, "zproxy_connect_requests_total", outcome="resolver_busy") == busy
    assert _metric(z, "zproxy_connect_dns_total", result="queue_full") == busy
    # One query reached the DNS server; the queued duplicates took its answer.
    assert dns.count("busy.zproxy.test", "A") == 1
    assert _metric(z, "zproxy_dns_coalesced_total") == ok - 1
    assert _metric(z, "zproxy_dns_queue_depth") == 0
    assert z.stderr().count("resolver queue full") == 1  # one line, not one per 503


def test_client_gone_before_the_answer_connects_nothing(make_proxy, backends, dns):
    echo = CountingEcho()
    dns.add("slow.zproxy.test", a=["127.0.0.1"], delay=0.8)
    z = _proxy(make_proxy, backends, dns, ["slow.zproxy.test:*"])
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
        s.sendall(b"CONNECT slow.zproxy.test:%d HTTP/1.1\r\nHost: x\r\n\r\n" % echo.port)
        time.sleep(0.05)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # RST: the client is gone
    time.sleep(1.2)  # the answers arrive for CONNECTs that no longer exist
    assert echo.accepted == 0
    assert _metric(z, "zproxy_connect_dns_total", result="resolved") == 0
    s, head = _tunnel(z.port, "slow.zproxy.test:%d" % echo.port)
    with s:
        assert head.startswith("HTTP/1.1 200"), head
        s.sendall(b"x")
        assert _recv_exact(s, 1) == b"x"
    assert echo.accepted == 1


def test_bytes_and_fin_sent_during_the_lookup_are_forwarded(make_proxy, backends, dns):
    echo = CountingEcho()
    dns.add("slow.zproxy.test", a=["127.0.0.1"], delay=0.6)
    z = _proxy(make_proxy, backends, dns, ["slow.zproxy.test:*"])
    s = socket.create_connection(("127.0.0.1", z.port), timeout=10)
    with s:
        s.sendall(b"CONNECT slow.zproxy.test:%d HTTP/1.1\r\nHost: x\r\n\r\nearly-" % echo.port)
        time.sleep(0.2)  # the lookup is pending: more bytes, then the FIN
        s.sendall(b"bytes")
        s.shutdown(socket.SHUT_WR)
        head = _read_head(s)
        assert head.startswith("HTTP/1.1 200"), head
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        assert got == b"early-bytes"
    assert echo.accepted == 1
