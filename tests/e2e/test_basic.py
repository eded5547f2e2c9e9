"""Request/response basics through the shared proxy: framing, keep-alive, pipelining, 1xx."""

import json
import subprocess

import httpraw
from httpraw import Conn, build_request


def test_curl_get_returns_backend_body(stack):
    out = subprocess.run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:%d/" % stack.port],
                         capture_output=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"hello from a\n"


def test_keepalive_two_requests_on_one_socket(stack, backends):
    with Conn(stack.port) as c:
        for _ in range(2):
            c.send(build_request(target="/"))
            r = c.read_response()
            assert r.status == 200 and r.body == b"hello from a\n"
            assert "close" not in r.connection_tokens()
        assert not c.is_closed(0.3), "proxy closed a keep-alive connection"


def test_pipelining_three_requests_in_one_write(stack):
    targets = ["/echo?n=1", "/bytes/10", "/echo?n=3"]
    with Conn(stack.port) as c:
        c.send(b"".join(build_request(target=t) for t in targets))
        r1, r2, r3 = (c.read_response() for _ in targets)
    assert json.loads(r1.body)["target"] == "/echo?n=1"
    assert r2.body == httpraw.pattern(10)
    assert json.loads(r3.body)["target"] == "/echo?n=3"


def test_http10_gets_compatible_response_and_close(stack):
    # /chunked/N upstream: an HTTP/1.0 client cannot take chunked framing.
    with Conn(stack.port) as c:
        c.send(b"GET /chunked/5000 HTTP/1.0\r\n\r\n")
        r = c.read_response()
        assert r.version in ("HTTP/1.0", "HTTP/1.1")
        assert r.status == 200
        assert "chunked" not in (r.header("transfer-encoding") or "").lower()
        assert r.body == httpraw.pattern(5000)
        assert c.is_closed(), "HTTP/1.0 connection without keep-alive stays open"


def test_head_has_no_body_and_next_pipelined_request_works(stack):
    with Conn(stack.port) as c:
        c.send(build_request("HEAD", "/bytes/1000") + build_request(target="/"))
        h = c.read_response(method="HEAD")
        assert h.status == 200 and h.header("content-length") == "1000"
        r = c.read_response()
        # If the proxy had sent body bytes for HEAD, they would show up here instead.
        assert r.status == 200 and r.body == b"hello from a\n"


def test_204_and_304_have_no_body(stack):
    with Conn(stack.port) as c:
        c.send(build_request(target="/status/204") + build_request(target="/status/304") +
               build_request(target="/"))
        assert c.read_response().status == 204
        assert c.read_response().status == 304
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello from a\n"


def test_103_early_hints_forwarded_before_200(stack):
    interim = []
    with Conn(stack.port) as c:
        c.send(build_request(target="/early-hints"))
        r = c.read_response(interim=interim)
    assert [i.status for i in interim] == [103]
    assert "rel=preload" in interim[0].header("link", "")
    assert r.status == 200 and r.body == b"early hints done\n"


def test_expect_100_continue(stack):
    body = b"x" * 10000
    interim = []
    with Conn(stack.port) as c:
        c.send(b"POST /continue HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n"
               b"Expect: 100-continue\r\n\r\n" % len(body))
        # A client that honours Expect waits for the 100 before sending the body.
        first = c.read_head(timeout=3)
        interim.append(first)
        c.send(body)
        r = c.read_response()
    assert first.status == 100
    assert r.status == 200
    assert json.loads(r.body)["body_len"] == len(body)
