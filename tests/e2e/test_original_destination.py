"""Original-destination routing with the REDIRECT fallback (issue 15 §3, docs/sidecar.md):
an nftables table of this test's own redirects what a marked client sends to 127.0.0.2:8000
and 127.0.0.3:9000 (two backends bound there) to zproxy's listeners; zproxy recovers the
dialled address with SO_ORIGINAL_DST and a cluster of type original_destination forwards
there. Only sockets carrying this test's random SO_MARK match the rules, so nothing else on
the machine is redirected; the table is deleted in a finally.

HTTP upstream connections are pooled per destination (a pool slot per dialled address):
requests on keep-alive connections reuse them, never across destinations; an upstream that
closes a pooled connection costs no request (a third destination, a scripted upstream on
127.0.0.4, closes its connections while idle or when the next request arrives).

Output-chain REDIRECT of locally generated traffic to a 127.0.0.1 (or ::1) listener needs no
route_localnet: the packet never leaves loopback, and REDIRECT picks the loopback address.
"""

import json
import os
import random
import shutil
import socket
import subprocess

import pytest

import time

import httpraw
import machine
import promtext
from conftest import cluster, listener
from procs import Backend, base_config, wait_until
from scripted_upstream import CLOSE, Script, ScriptedUpstream, response

pytestmark = pytest.mark.skipif(shutil.which("nft") is None,
                                reason="nft missing (tools/install-deps installs nftables)")

MARK_HTTP = random.randrange(0x10000, 0x7fffffff)
MARK_TCP = MARK_HTTP + 1
A = ("127.0.0.2", 8000)
B = ("127.0.0.3", 9000)


def nft(*args):
    subprocess.run(["nft"] + list(args), check=True, capture_output=True, timeout=10)


def scrape(z):
    import httpraw
    r = httpraw.request(z.metrics_port, target="/metrics")
    return promtext.parse(r.body.decode())


def total(fams, name, **labels):
    f = fams.get(name)
    return 0 if f is None else f.value(**labels)


def request(addr, mark=None, host="app.test", target="/echo", family=socket.AF_INET):
    """One HTTP/1.1 request with Connection: close from a socket carrying `mark`; returns
    (status, body) or raises on a connection closed without a response."""
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        if mark is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        s.settimeout(10)
        s.connect(addr)
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (target, host)).encode())
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    if not data:
        raise ConnectionError("closed without a response")
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def echoed(body):
    """The backend's /echo: its name and the headers it got, {lowercase name: [values]}."""
    j = json.loads(body)
    seen = {}
    for n, v in j["headers"]:
        seen.setdefault(n.lower(), []).append(v)
    return j, seen


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("origdst"))
    backends = []
    for name, (ip, port) in (("orig-a", A), ("orig-b", B)):
        backends.append(Backend(name, d, listen="%s:%d" % (ip, port)))
    b6 = Backend("orig-v6", d, listen="[::1]:0")
    backends.append(b6)
    yield d, backends
    for b in backends:
        b.stop()


def _scripted_answer(conn, index, method, target, body):
    """/idle-close: answered, then the upstream closes the connection 0.2 s later (its
    keep-alive timeout firing while zproxy holds it idle). Otherwise the first request on a
    connection is answered and the second one gets the connection closed unanswered (a
    pooled connection found closed when it is used)."""
    if target.startswith("/idle-close"):
        return Script(response(body=b"conn %d\n" % conn.index), 0.2, CLOSE)
    if index == 0:
        return response(body=b"conn %d\n" % conn.index)
    return None


@pytest.fixture(scope="module")
def scripted():
    up = ScriptedUpstream(_scripted_answer, host="127.0.0.4")
    yield up
    up.close()


@pytest.fixture
def proxy(setup, scripted, make_proxy, tmp_path):
    d, backends = setup
    access_log = str(tmp_path / "access.log")
    pinned = [{"match": {"prefix": "/", "hosts": ["pinned.test"]}, "cluster": "static-b"},
              {"match": {"prefix": "/"}, "cluster": "passthrough",
               "request_headers": {"set": {"X-Sidecar": "${listener}"}}}]
    http = listener("outbound", pinned)
    http["original_destination"] = True
    http6 = listener("outbound6", [{"match": {"prefix": "/"}, "cluster": "passthrough"}])
    http6["address"] = "[::1]:0"
    http6["original_destination"] = True
    tcp = {"name": "outbound-tcp", "address": "127.0.0.1:0", "original_destination": True,
           "tcp_proxy": {"cluster": "passthrough"}}
    cfg = base_config([http, http6, tcp],
                      [{"name": "passthrough", "type": "original_destination",
                        "connect_timeout_ms": 2000},
                       cluster("static-b", "%s:%d" % B)],
                      access_log=access_log)
    z = make_proxy(cfg)
    table = "zproxy_test_%08x" % random.getrandbits(32)
    nft("add", "table", "inet", table)
    try:
        nft("add", "chain", "inet", table, "out",
            "{ type nat hook output priority -100 ; }")
        for mark, port in ((MARK_HTTP, z.ports["outbound"]), (MARK_TCP, z.ports["outbound-tcp"])):
            for ip, p in (A, B, ("127.0.0.4", scripted.port)):
                nft("add", "rule", "inet", table, "out", "meta", "mark", str(mark), "ip",
                    "daddr", ip, "tcp", "dport", str(p), "redirect", "to", ":%d" % port)
        nft("add", "rule", "inet", table, "out", "meta", "mark", str(MARK_HTTP), "ip6",
            "daddr", "::1", "tcp", "dport", str(backends[2].port), "redirect", "to",
            ":%d" % z.ports["outbound6"])
        yield z, access_log, backends
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True)
        listed = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        assert table not in listed, "nft table %s left behind" % table


def test_http_goes_to_the_dialled_backend_with_forwarded_headers(proxy):
    z, access_log, _ = proxy
    for (ip, port), name in ((A, "orig-a"), (B, "orig-b"), (A, "orig-a")):
        status, body = request((ip, port), MARK_HTTP)
        assert status == 200, body
        j, seen = echoed(body)
        assert j["name"] == name, j
        assert seen.get("x-forwarded-for") == ["127.0.0.1"], seen
        assert seen.get("x-sidecar") == ["outbound"], seen  # the route's policy applied
    fams = scrape(z)
    assert total(fams, "zproxy_original_destination_total", source="so_original_dst") == 3
    # The access log names the original destination as the upstream.
    assert wait_until(lambda: os.path.exists(access_log) and
                      " 127.0.0.3:9000 " in open(access_log).read(), 3), \
        open(access_log).read() if os.path.exists(access_log) else "no access log"


def test_routes_still_apply(proxy):
    """A route by Host wins over the passthrough route: the client dialled A, the Host
    pins it to the static cluster (B)."""
    status, body = request(A, MARK_HTTP, host="pinned.test")
    assert status == 200, body
    assert echoed(body)[0]["name"] == "orig-b"


def test_ipv6_redirect(proxy):
    z, _, backends = proxy
    status, body = request(("::1", backends[2].port), MARK_HTTP, family=socket.AF_INET6)
    assert status == 200, body
    j, seen = echoed(body)
    assert j["name"] == "orig-v6"
    assert seen.get("x-forwarded-for") == ["::1"], seen


def test_unmarked_traffic_is_not_redirected(proxy):
    """The rules match only this test's mark: the same dial without it reaches the
    backend directly (no X-Forwarded-For from zproxy)."""
    status, body = request(A)
    assert status == 200
    j, seen = echoed(body)
    assert j["name"] == "orig-a" and "x-forwarded-for" not in seen, seen


def test_direct_connection_is_refused_not_looped(proxy):
    """Dialled the listener itself: its original destination is the listener, and
    forwarding there would loop. HTTP: 502 naming why; tcp_proxy: closed. Both counted."""
    z, _, _ = proxy
    status, body = request(("127.0.0.1", z.ports["outbound"]))
    assert status == 502
    assert b"no original destination" in body, body
    s = socket.create_connection(("127.0.0.1", z.ports["outbound-tcp"]), timeout=5)
    try:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
    finally:
        s.close()
    fams = scrape(z)
    # The readiness probe made one more to the HTTP listener.
    assert total(fams, "zproxy_original_destination_total", source="not_redirected") >= 2
    assert total(fams, "zproxy_errors_total", cause="no_original_destination") >= 2


def test_tcp_proxy_goes_to_the_dialled_backend(proxy):
    z, _, _ = proxy
    status, body = request(B, MARK_TCP)
    assert status == 200
    j, seen = echoed(body)
    assert j["name"] == "orig-b"
    assert "x-forwarded-for" not in seen  # raw TCP: the bytes are the client's
    fams = scrape(z)
    assert total(fams, "zproxy_original_destination_total", source="so_original_dst") >= 1
    if total(fams, "zproxy_passthrough_connections_total", mode="sockmap") == 0:
        machine.fallback("sockmap", "tcp_proxy to an original destination did not use sockmap")


class MarkedConn(httpraw.Conn):
    """A keep-alive client connection from a socket carrying `mark`, to `addr`."""

    def __init__(self, addr, mark, timeout=10):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def get(self, target, host="app.test"):
        self.send(httpraw.build_request(target=target, host=host))
        return self.read_response()


def test_keep_alive_client_reuses_one_upstream_connection(proxy, setup):
    """Five requests on one keep-alive client connection reach the dialled backend over one
    upstream connection; a second client connection to the same destination takes the same
    pooled connection (one worker)."""
    z, _, _ = proxy
    backend_a = setup[1][0]
    reused = total(scrape(z), "zproxy_upstream_reused_total")
    mark = backend_a.log.mark()
    with MarkedConn(A, MARK_HTTP) as c:
        for i in range(5):
            r = c.get("/echo?i=%d" % i)
            assert r.status == 200, r
            j, _ = echoed(r.body)
            assert j["name"] == "orig-a" and j["target"] == "/echo?i=%d" % i, j
    assert len(backend_a.log.conns_since(mark)) == 1, backend_a.log.lines_since(mark)
    with MarkedConn(A, MARK_HTTP) as c:
        r = c.get("/echo?i=5")
        assert r.status == 200 and echoed(r.body)[0]["name"] == "orig-a", r
    assert len(backend_a.log.conns_since(mark)) == 1, backend_a.log.lines_since(mark)
    assert len(backend_a.log.reqs_since(mark)) == 6
    assert total(scrape(z), "zproxy_upstream_reused_total") == reused + 5


def test_two_destinations_interleaved_never_crossed(proxy, setup):
    """Clients dialling A and B, interleaved on keep-alive connections (both requests in
    flight at once) and on new connections: every response comes from the backend that
    was dialled, for the request that was sent; the pooled connections are reused."""
    z, _, _ = proxy
    backend_a, backend_b = setup[1][0], setup[1][1]
    marks = (backend_a.log.mark(), backend_b.log.mark())
    reused = total(scrape(z), "zproxy_upstream_reused_total")
    n = 150
    with MarkedConn(A, MARK_HTTP) as ca, MarkedConn(B, MARK_HTTP) as cb:
        for i in range(n):
            ca.send(httpraw.build_request(target="/echo?a=%d" % i, host="app.test"))
            cb.send(httpraw.build_request(target="/echo?b=%d" % i, host="app.test"))
            for c, name, tgt in ((cb, "orig-b", "/echo?b=%d" % i),
                                 (ca, "orig-a", "/echo?a=%d" % i)):
                r = c.read_response()
                assert r.status == 200, (i, r)
                j, _ = echoed(r.body)
                assert (j["name"], j["target"]) == (name, tgt), (i, j)
            if i % 10 == 0:  # a short-lived client of either destination in between
                addr, name = (A, "orig-a") if i % 20 == 0 else (B, "orig-b")
                status, body = request(addr, MARK_HTTP, target="/echo?new=%d" % i)
                assert status == 200 and echoed(body)[0]["name"] == name, (i, body)
    # Two keep-alive clients in flight at once need two upstream connections per
    # destination at most (the short-lived clients take an idle one).
    assert 1 <= len(backend_a.log.conns_since(marks[0])) <= 2, backend_a.log.lines_since(marks[0])
    assert 1 <= len(backend_b.log.conns_since(marks[1])) <= 2, backend_b.log.lines_since(marks[1])
    assert total(scrape(z), "zproxy_upstream_reused_total") >= reused + 2 * n - 4


def test_upstream_closing_idle_pooled_connection(proxy, scripted):
    """The upstream closes a pooled connection while it is idle: zproxy drops it, and the
    next request on the same client connection gets a new one (200, no error)."""
    z, _, _ = proxy
    c_addr = ("127.0.0.4", scripted.port)
    first = len(scripted.conns)
    errors = total(scrape(z), "zproxy_errors_total")
    with MarkedConn(c_addr, MARK_HTTP) as c:
        r = c.get("/idle-close-1")
        assert r.status == 200 and r.body == b"conn %d\n" % first, r
        assert wait_until(lambda: scripted.conns[first].closed_by_peer.is_set(), 5), \
            "zproxy kept the connection the upstream closed"
        r = c.get("/idle-close-2")
        assert r.status == 200 and r.body == b"conn %d\n" % (first + 1), r
    assert total(scrape(z), "zproxy_errors_total") == errors


def test_stale_pooled_connection_retried_on_fresh_one(proxy, scripted):
    """The pooled connection is found closed when the next request arrives (the upstream
    closes it on reading it): the request goes again on a new connection to the same
    destination, and the client gets its 200."""
    z, _, _ = proxy
    c_addr = ("127.0.0.4", scripted.port)
    first = len(scripted.conns)
    retries = total(scrape(z), "zproxy_upstream_retries_total")
    with MarkedConn(c_addr, MARK_HTTP) as c:
        r = c.get("/one")
        assert r.status == 200 and r.body == b"conn %d\n" % first, r
        r = c.get("/two")
        assert r.status == 200 and r.body == b"conn %d\n" % (first + 1), r
    got = [(conn - first, m, t) for conn, m, t in scripted.requests() if conn >= first]
    assert got == [(0, "GET", "/one"), (0, "GET", "/two"), (1, "GET", "/two")], got
    assert total(scrape(z), "zproxy_upstream_retries_total") == retries + 1
