"""Request smuggling and malformed input: rejected with 400 (or 413/414/431), Connection:
close, the connection closed, and nothing forwarded to the upstream."""

import pytest

import httpraw
from backendlog import canary_target
from conftest import catch_all, cluster, listener
from procs import base_config

H = b"Host: t"


def _req(head_lines, body=b"", target=b"/echo", method=b"POST"):
    return method + b" " + target + b" HTTP/1.1\r\n" + b"".join(l + b"\r\n" for l in head_lines) \
        + b"\r\n" + body


# (id, raw request, expected status). Bodies are complete so a lenient proxy would forward.
HEAD_CASES = [
    ("cl_and_te", _req([H, b"Content-Length: 5", b"Transfer-Encoding: chunked"], b"0\r\n\r\n"), 400),
    ("two_content_lengths", _req([H, b"Content-Length: 5", b"Content-Length: 6"], b"hello!"), 400),
    ("cl_plus", _req([H, b"Content-Length: +5"], b"hello"), 400),
    ("cl_negative", _req([H, b"Content-Length: -1"], b"hello"), 400),
    ("cl_two_numbers", _req([H, b"Content-Length: 5 5"], b"hello"), 400),
    ("cl_hex", _req([H, b"Content-Length: 0x5"], b"hello"), 400),
    ("te_gzip_chunked", _req([H, b"Transfer-Encoding: gzip, chunked"], b"0\r\n\r\n"), 400),
    ("te_xchunked", _req([H, b"Transfer-Encoding: xchunked"], b"0\r\n\r\n"), 400),
    ("te_chunked_not_last", _req([H, b"Transfer-Encoding: chunked, identity"], b"0\r\n\r\n"), 400),
    ("te_space_before_colon", _req([H, b"Transfer-Encoding : chunked"], b"0\r\n\r\n"), 400),
    ("te_vertical_tab", _req([H, b"Transfer-Encoding: \x0bchunked"], b"0\r\n\r\n"), 400),
    ("te_leading_space_line", _req([H, b" Transfer-Encoding: chunked"], b"0\r\n\r\n"), 400),
    ("obs_fold", _req([H, b"X-Folded: a", b" b"], method=b"GET", target=b"/"), 400),
    ("bare_lf", b"GET / HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n", 400),
    ("nul_in_value", _req([H, b"X-A: a\x00b"], method=b"GET", target=b"/"), 400),
    ("bad_token_in_name", _req([H, b"X[A]: b"], method=b"GET", target=b"/"), 400),
    ("http11_without_host", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    ("two_hosts", _req([H, b"Host: u"], method=b"GET", target=b"/"), 400),
    ("request_line_too_long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    ("headers_too_large", _req([H] + [b"X-Big-%d: %s" % (i, b"v" * 1000) for i in range(70)],
                               method=b"GET", target=b"/"), 431),
    ("too_many_headers", _req([H] + [b"X-H%d: v" % i for i in range(150)],
                              method=b"GET", target=b"/"), 431),
]

# Body framing errors: a streaming proxy may already have sent the head upstream when it finds
# them, so for these only the status and the close are asserted, not the backend's log.
BODY_CASES = [
    ("chunk_size_zz", _req([H, b"Transfer-Encoding: chunked"], b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk_size_overflow",
     _req([H, b"Transfer-Encoding: chunked"], b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk_bad_extension",
     _req([H, b"Transfer-Encoding: chunked"], b"5;\x01=\x02\r\nhello\r\n0\r\n\r\n"), 400),
    ("chunk_missing_crlf",
     _req([H, b"Transfer-Encoding: chunked"], b"5\r\nhelloXX0\r\n\r\n"), 400),
]


def _assert_rejected(port, raw, status):
    with httpraw.Conn(port) as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == status, r
        assert "close" in r.connection_tokens(), "error response without Connection: close"
        assert c.is_closed(3), "connection left open after a rejected request"
    return r


def _assert_not_forwarded(port, log, mark):
    # A canary on a fresh connection: once the backend logged it, anything the proxy forwarded
    # for the bad request would be in the log too.
    canary = canary_target()
    assert httpraw.request(port, target=canary).status == 200
    assert log.wait_for_req(mark, canary)
    forwarded = [r for r in log.reqs_since(mark) if r[1] != canary]
    assert forwarded == [], "upstream saw a rejected request: %r" % forwarded


@pytest.mark.parametrize("raw,status", [c[1:] for c in HEAD_CASES], ids=[c[0] for c in HEAD_CASES])
def test_rejected_and_not_forwarded(stack, backends, raw, status):
    log = backends["a"].log
    mark = log.mark()
    _assert_rejected(stack.port, raw, status)
    _assert_not_forwarded(stack.port, log, mark)


@pytest.mark.parametrize("raw,status", [c[1:] for c in BODY_CASES], ids=[c[0] for c in BODY_CASES])
def test_bad_chunked_body_rejected(stack, raw, status):
    _assert_rejected(stack.port, raw, status)


def test_tab_after_colon_is_valid_ows(stack):
    # "Transfer-Encoding:\tchunked" is legal (OWS includes HTAB): it must be decoded, not
    # rejected and not passed through as an unknown coding.
    raw = _req([H, b"Transfer-Encoding:\tchunked"], b"5\r\nhello\r\n0\r\n\r\n")
    r, _ = httpraw.exchange(stack.port, raw)
    assert r.status == 200
    assert b'"body_len":5' in r.body


def test_no_request_after_rejected_one_on_same_connection(stack, backends):
    log = backends["a"].log
    mark = log.mark()
    bad = _req([H, b"Content-Length: 5", b"Transfer-Encoding: chunked"], b"0\r\n\r\n")
    follow = httpraw.build_request(target="/after-reject")
    with httpraw.Conn(stack.port) as c:
        c.send(bad + follow)
        assert c.read_response().status == 400
        assert c.is_closed(3)  # nothing else, in particular no response to /after-reject
    _assert_not_forwarded(stack.port, log, mark)


def test_body_over_max_body_bytes_is_413(make_proxy, backends):
    b = backends["a"]
    cfg = base_config([listener("web", catch_all("a"), max_body_bytes=1000)],
                      [cluster("a", b.addr)])
    z = make_proxy(cfg)
    mark = b.log.mark()
    _assert_rejected(z.port, _req([H, b"Content-Length: 2000"], b"x" * 2000), 413)
    ok = httpraw.request(z.port, "POST", "/echo", body=b"y" * 1000)
    assert ok.status == 200 and b'"body_len":1000' in ok.body
    assert ("POST", "/echo") in b.log.reqs_since(mark)
    assert b.log.reqs_since(mark).count(("POST", "/echo")) == 1, "the 413 body reached upstream"
