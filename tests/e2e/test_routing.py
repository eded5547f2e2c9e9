"""Routing (host exact/wildcard, exact path vs prefix, methods, 404) and header rewriting."""

import json

import pytest

import httpraw


def _who(port, target="/", host="test.local", method="GET"):
    r = httpraw.request(port, method, target, host=host)
    assert r.status == 200, r
    return r.body.decode().strip().rsplit(" ", 1)[-1]  # "hello from NAME"


@pytest.mark.parametrize("host,expected", [
    ("api.example.com", "b"),           # exact host
    ("v1.api.example.com", "b"),        # wildcard
    ("API.Example.COM", "b"),           # host names are case-insensitive
    ("api.example.com:8080", "b"),      # port is not part of the match
    ("api.example.com.evil", "a"),
    ("example.com", "a"),
])
def test_host_match(stack, host, expected):
    assert _who(stack.port, "/api/x", host=host) == expected


def test_wildcard_does_not_match_the_bare_suffix_label(stack):
    assert _who(stack.port, "/api/x", host="xapi.example.com") == "a"


@pytest.mark.parametrize("target,expected", [
    ("/exact", "b"), ("/exact?q=1", "b"), ("/exact/more", "a"), ("/exactly", "a"),
])
def test_exact_path_vs_prefix(stack, target, expected):
    assert _who(stack.port, target) == expected


def test_method_filter(stack):
    assert _who(stack.port, "/only-post/x", method="POST") == "b"
    assert _who(stack.port, "/only-post/x", method="GET") == "a"
    assert _who(stack.port, "/api/x", host="api.example.com", method="POST") == "a"


def test_no_route_is_404_with_short_text_body(stack, backends):
    mark = backends["a"].log.mark()
    port = stack.ports["strict"]
    for host, target in (("other.example", "/x/1"), ("strict.example", "/y")):
        r = httpraw.request(port, target=target, host=host)
        assert r.status == 404, r
        assert 0 < len(r.body) < 200
        assert r.header("content-type", "").startswith("text/plain")
    assert httpraw.request(port, target="/x/1", host="strict.example").status == 200
    assert backends["a"].log.reqs_since(mark) == [("GET", "/x/1")]


def _echo(port, headers=(), host="test.local", target="/echo"):
    r = httpraw.request(port, target=target, headers=list(headers), host=host)
    assert r.status == 200, r
    j = json.loads(r.body)
    seen = {}
    for n, v in j["headers"]:
        seen.setdefault(n.lower(), []).append(v)
    return j, seen


def test_host_rewrite(stack):
    j, seen = _echo(stack.port, host="api.example.com", target="/api/echo")
    assert j["name"] == "b"
    assert seen["host"] == ["internal.app"]
    assert seen["x-forwarded-host"] == ["api.example.com"]


def test_host_kept_without_rewrite(stack):
    _, seen = _echo(stack.port, host="keep.example")
    assert seen["host"] == ["keep.example"]


def test_x_forwarded_for_appended(stack):
    _, seen = _echo(stack.port, [("X-Forwarded-For", "1.2.3.4")])
    assert seen["x-forwarded-for"] == ["1.2.3.4, 127.0.0.1"]


def test_x_forwarded_for_added(stack):
    _, seen = _echo(stack.port)
    assert seen["x-forwarded-for"] == ["127.0.0.1"]


def test_x_forwarded_proto_and_host(stack):
    _, seen = _echo(stack.port, host="orig.example:8443")
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == ["orig.example:8443"]


def test_hop_by_hop_headers_removed(stack):
    _, seen = _echo(stack.port, [
        ("Connection", "keep-alive, x-custom"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Upgrade", "foo/1"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Custom", "secret"),
        ("X-Kept", "yes"),
    ])
    for h in ("keep-alive", "te", "upgrade", "proxy-connection", "x-custom"):
        assert h not in seen, "%s reached the upstream: %r" % (h, seen[h])
    # The proxy may send its own Connection header, but never the client's tokens.
    for v in seen.get("connection", []):
        assert {t.strip().lower() for t in v.split(",")} <= {"keep-alive", "close"}, v
    assert seen["x-kept"] == ["yes"]
