"""HTTP over IPv6: a listener on [::1], X-Forwarded-For carrying the IPv6 client address
(::1, written without brackets, as nginx and Envoy do), and a cluster whose endpoint is an
IPv6 address. The backend logs its peer, which shows the upstream leg really is IPv6."""

import json
import socket

import pytest

import httpraw
from conftest import catch_all, cluster, listener
from procs import Backend, base_config


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True, ""
    except OSError as e:
        return False, str(e)


@pytest.fixture(autouse=True)
def _ipv6():
    ok, why = _has_ipv6_loopback()
    if not ok:
        pytest.skip("machine lacks an IPv6 loopback (bind ::1: %s)" % why)


@pytest.fixture
def backend6(tmp_path):
    b = Backend("v6", str(tmp_path), listen="[::1]:0")
    yield b
    b.stop()


@pytest.fixture
def backend4(tmp_path):
    b = Backend("v4", str(tmp_path))
    yield b
    b.stop()


def _echo(port, host, headers=()):
    with httpraw.Conn(port, host=host) as c:
        c.send(httpraw.build_request(target="/echo", headers=list(headers), close=True))
        r = c.read_response()
    assert r.status == 200, r
    seen = {}
    for n, v in json.loads(r.body)["headers"]:
        seen.setdefault(n.lower(), []).append(v)
    return seen


def test_ipv6_listener_and_xff(make_proxy, backend4):
    l6 = listener("v6", catch_all("app"))
    l6["address"] = "[::1]:0"
    z = make_proxy(base_config([l6], [cluster("app", backend4.addr)]))
    seen = _echo(z.port, "::1")
    assert seen.get("x-forwarded-for") == ["::1"], seen
    assert seen.get("x-forwarded-proto") == ["http"], seen
    # Appended after what the client sent, IPv4 or IPv6.
    seen = _echo(z.port, "::1", [("X-Forwarded-For", "2001:db8::7, 192.0.2.1")])
    assert seen.get("x-forwarded-for") == ["2001:db8::7, 192.0.2.1, ::1"], seen
    # Keep-alive over IPv6: two requests on one connection.
    with httpraw.Conn(z.port, host="::1") as c:
        for _ in range(2):
            c.send(httpraw.build_request(target="/"))
            assert c.read_response().body == b"hello from v4\n"


def test_ipv6_upstream_endpoint(make_proxy, backend6):
    assert backend6.addr.startswith("[::1]:"), backend6.addr
    mark = backend6.log.mark()  # before the harness's readiness probe opens the pooled one
    z = make_proxy(base_config([listener("web", catch_all("app"))],
                               [cluster("app", backend6.addr)]))
    seen = _echo(z.port, "127.0.0.1")
    assert seen.get("x-forwarded-for") == ["127.0.0.1"], seen
    r = httpraw.request(z.port, target="/bytes/100000")
    assert r.status == 200 and r.body == httpraw.pattern(100000)
    # The backend's peers: zproxy connected from an IPv6 address.
    peers = backend6.log.conns_since(mark)
    assert peers and all(p.startswith("[::1]:") for p in peers), peers


def test_ipv6_end_to_end(make_proxy, backend6):
    l6 = listener("v6", catch_all("app"))
    l6["address"] = "[::1]:0"
    z = make_proxy(base_config([l6], [cluster("app", backend6.addr)]))
    seen = _echo(z.port, "::1")
    assert seen.get("x-forwarded-for") == ["::1"], seen
