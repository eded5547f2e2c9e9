"""Original-destination routing with the REDIRECT fallback (issue 15 §3, docs/sidecar.md):
an nftables table of this test's own redirects what a marked client sends to 127.0.0.2:8000
and 127.0.0.3:9000 (two backends bound there) to zproxy's listeners; zproxy recovers the
dialled address with SO_ORIGINAL_DST and a cluster of type original_destination forwards
there. Only sockets carrying this test's random SO_MARK match the rules, so nothing else on
the machine is redirected; the table is deleted in a finally.

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

import machine
import promtext
from conftest import cluster, listener
from procs import Backend, base_config, wait_until

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


@pytest.fixture
def proxy(setup, make_proxy, tmp_path):
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
            for ip, p in (A, B):
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
