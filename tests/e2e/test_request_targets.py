"""RFC 9112 §3.2: the four request-target forms, as an HTTP/1.1 intermediary must treat
them: origin-form routed and forwarded as is; absolute-form routed by its authority (the
Host field is ignored) and forwarded in origin-form, or in asterisk-form for an OPTIONS
with an empty path (§3.2.4); authority-form only for CONNECT; asterisk-form only for
OPTIONS, forwarded as "*"."""

import httpraw
from httpraw import Conn


def ask(port, raw):
    with Conn(port) as c:
        c.send(raw)
        return c.read_response(method=raw.split(b" ", 1)[0].decode())


def upstream_saw(backend, mark, method, target):
    return backend.log.wait_for_req(mark, target) and \
        (method, target) in backend.log.reqs_since(mark)


def test_origin_form(stack, backends):
    mark = backends["a"].log.mark()
    r = ask(stack.port, b"GET /echo?x=1 HTTP/1.1\r\nHost: t.example\r\n\r\n")
    assert r.status == 200
    assert upstream_saw(backends["a"], mark, "GET", "/echo?x=1")


def test_absolute_form_routes_by_its_authority_not_host(stack, backends):
    mark = backends["b"].log.mark()
    # Host names a host with no /api/ route; the target's authority has one (to b).
    r = ask(stack.port, b"GET http://api.example.com/api/echo?y HTTP/1.1\r\n"
                        b"Host: wrong.example\r\n\r\n")
    assert r.status == 200, r
    assert upstream_saw(backends["b"], mark, "GET", "/api/echo?y")
    # No path, a query: origin-form "/?q".
    mark = backends["a"].log.mark()
    r = ask(stack.port, b"GET http://t.example?q=1 HTTP/1.1\r\nHost: t.example\r\n\r\n")
    assert r.status == 200
    assert upstream_saw(backends["a"], mark, "GET", "/?q=1")


def test_absolute_form_options_with_empty_path_goes_on_as_asterisk(stack, backends):
    mark = backends["a"].log.mark()
    r = ask(stack.port, b"OPTIONS http://www.example.org:8001 HTTP/1.1\r\n"
                        b"Host: www.example.org:8001\r\n\r\n")
    assert r.status == 200, r
    assert upstream_saw(backends["a"], mark, "OPTIONS", "*")
    # With a path it stays origin-form.
    mark = backends["a"].log.mark()
    ask(stack.port, b"OPTIONS http://www.example.org:8001/ HTTP/1.1\r\nHost: x\r\n\r\n")
    assert upstream_saw(backends["a"], mark, "OPTIONS", "/")


def test_asterisk_form_only_for_options(stack, backends):
    mark = backends["a"].log.mark()
    r = ask(stack.port, b"OPTIONS * HTTP/1.1\r\nHost: t.example\r\n\r\n")
    assert r.status == 200, r
    assert upstream_saw(backends["a"], mark, "OPTIONS", "*")
    r = ask(stack.port, b"GET * HTTP/1.1\r\nHost: t.example\r\n\r\n")
    assert r.status == 400


def test_authority_form_only_for_connect(stack):
    # CONNECT is not enabled on this listener: 403, never routed.
    r = ask(stack.port, b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n")
    assert r.status == 403
    r = ask(stack.port, b"GET t.example:80 HTTP/1.1\r\nHost: t.example\r\n\r\n")
    assert r.status == 400
