"""A misbehaving HTTP/1.1 upstream (issue 12, section 3), one case each, with scripted_upstream:
malformed status line, conflicting Content-Length, CL + TE, an invalid chunk size, a close
mid-head and mid-body (Content-Length and chunked), a response before the request body was
read, a flood of 1xx, an oversized response head and a 1 byte/s drip of the head.

For each case:
- the client gets a clear 502/504 (docs/http.md: short bodies naming the cause),
  or, where response bytes were already sent, a cut connection: a Content-Length body is not
  completed, a chunked one lacks its last chunk;
- nothing is desynchronised: the next request (on the same client connection where it
  survived, on a new one where zproxy closed it) gets the right answer;
- the upstream connection that misbehaved is discarded: zproxy closes it (the upstream sees
  the close) and the next request arrives on a new upstream connection.

Every bad case runs on a *pooled* upstream connection: a good request first opens it (the
answer names the connection), the bad one reuses it.
"""

import socket
import threading
import time

import pytest

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config, wait_until
from scripted_upstream import CLOSE, RESET, Script, ScriptedUpstream, response
from test_metrics import scrape

READ_TIMEOUT_MS = 3000
INVALID = b"zproxy: invalid upstream response\n"
CLOSED = b"zproxy: upstream closed connection before response\n"


class Bad:
    """One proxy in front of one scripted upstream. `/good` answers 200 "good from conn N"
    keep-alive; `/bad` answers what the test scripts (bytes, a Script or None)."""

    def __init__(self, make_proxy, bad, early=None, drain_early=True, **cluster_kw):
        self.bad = bad

        def answer(conn, index, method, target, body):
            if target.startswith("/__zproxy_e2e_ready"):
                return response(close=True)  # the harness's readiness probe: not pooled
            if target == "/good":
                return response(body=b"good from conn %d\n" % conn.index)
            return self.bad() if callable(self.bad) else self.bad

        self.up = ScriptedUpstream(answer, early=early, drain_early=drain_early)
        kw = {"read_timeout_ms": READ_TIMEOUT_MS}
        kw.update(cluster_kw)
        cfg = base_config([listener("web", catch_all("app"))], [cluster("app", self.up.addr, **kw)])
        self.z = make_proxy(cfg)

    def open_pooled(self):
        """A client connection whose first request (/good) opened a pooled upstream
        connection; returns (client conn, upstream Accepted)."""
        c = httpraw.Conn(self.z.port, timeout=10)
        c.send(httpraw.build_request(target="/good"))
        r = c.read_response()
        assert r.status == 200, r
        n = int(r.body.split()[-1])
        return c, self.up.conns[n]

    def check_recovered(self, c, bad_conn, upstream_reset=False, unread=False):
        """After the bad exchange on client connection c (upstream connection bad_conn):
        zproxy closed bad_conn, and the next request gets the right answer on a new
        upstream connection (on c if zproxy kept c open, else on a new client connection).
        """
        # (An upstream that reset the connection itself has nothing left to see.)
        if upstream_reset:
            pass
        elif unread:
            # The upstream never read what zproxy had sent: zproxy's FIN waits behind
            # those bytes in its socket's send queue (FIN-WAIT-1 at zero window) and never
            # reaches the upstream. zproxy's own count says whether it let go.
            assert wait_until(lambda: scrape(self.z)["zproxy_connections_open"].value(
                side="upstream") == 0, 5), "zproxy kept the upstream connection open"
        else:
            assert bad_conn.closed_by_peer.wait(5), \
                "zproxy kept the upstream connection %d that misbehaved open" % bad_conn.index
        try:
            c.send(httpraw.build_request(target="/good"))
            r = c.read_response(timeout=5)
        except (OSError, httpraw.ConnectionClosed):
            # zproxy closed the client connection after the bad exchange: a new one.
            c.close()
            c = httpraw.Conn(self.z.port, timeout=10)
            c.send(httpraw.build_request(target="/good"))
            r = c.read_response(timeout=5)
        assert r.status == 200 and r.body.startswith(b"good from conn "), r
        n = int(r.body.split()[-1])
        assert n > bad_conn.index, "the next request reused upstream connection %d" % n
        assert self.up.conns[n].requests == [("GET", "/good")], self.up.conns[n].requests
        c.close()

    def close(self):
        self.up.close()


@pytest.fixture
def bad_upstream(make_proxy):
    made = []

    def make(bad, **kw):
        b = Bad(make_proxy, bad, **kw)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def _error_reply(b, bad_status, body):
    """The common shape: /bad on a pooled connection -> bad_status with `body`, then
    recovery."""
    c, up_conn = b.open_pooled()
    c.send(httpraw.build_request(target="/bad"))
    t0 = time.monotonic()
    r = c.read_response(timeout=10)
    assert r.status == bad_status, (r, r.body)
    assert r.body == body, r.body
    assert time.monotonic() - t0 < 5
    assert up_conn.requests == [("GET", "/good"), ("GET", "/bad")]
    b.check_recovered(c, up_conn)
    return r


def _cut(c):
    """Reads a response whose head got through and whose body the proxy must cut: returns
    (head, raw body bytes received before the connection closed)."""
    head = c.read_head(timeout=10)
    raw = c.read_until_close(timeout=10)  # raises socket.timeout if it is not cut
    return head, raw


# --- malformed heads: 502 before any response byte reached the client -----------------------

@pytest.mark.parametrize("head", [
    b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok",          # status not digits
    b"HTTP/1.1200 OK\r\nContent-Length: 2\r\n\r\nok",           # no SP after the version
    b"HTZP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",          # not HTTP
], ids=["status-letters", "no-space", "bad-version"])
def test_malformed_status_line_is_502(bad_upstream, head):
    _error_reply(bad_upstream(head), 502, INVALID)


def test_conflicting_content_length_is_502(bad_upstream):
    b = bad_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nokxyz")
    _error_reply(b, 502, INVALID)


def test_content_length_list_conflicting_is_502(bad_upstream):
    b = bad_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 5\r\n\r\nokxyz")
    _error_reply(b, 502, INVALID)


def test_content_length_plus_transfer_encoding(bad_upstream):
    """RFC 9112 6.3: CL + TE "ought to be handled as an error"; an intermediary that forwards
    it anyway must drop Content-Length first. zproxy's strict parser (docs/http.md) refuses it:
    502, the same as it answers a client's CL + TE with a 400."""
    b = bad_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\n5\r\nhello\r\n0\r\n\r\n")
    _error_reply(b, 502, INVALID)


def test_oversized_response_head_is_502(bad_upstream):
    """A response head larger than the largest head zproxy takes (the listeners'
    max_header_bytes, 64 KiB here): 502, not a hang or a truncated head."""
    big = b"HTTP/1.1 200 OK\r\n" + b"".join(
        b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(100)) + \
        b"Content-Length: 2\r\n\r\nok"
    assert len(big) > 65536 + 4096
    _error_reply(bad_upstream(big), 502, INVALID)


def test_close_mid_head_is_502(bad_upstream):
    b = bad_upstream(Script(b"HTTP/1.1 200 OK\r\nContent-Len", 0.2, CLOSE))
    _error_reply(b, 502, CLOSED)


def test_reset_mid_head_is_502(bad_upstream):
    b = bad_upstream(Script(b"HTTP/1.1 200 OK\r\nContent-Len", 0.2, RESET))
    c, up_conn = b.open_pooled()
    c.send(httpraw.build_request(target="/bad"))
    r = c.read_response(timeout=10)
    assert r.status == 502, r
    assert r.body.startswith(b"zproxy: upstream"), r.body
    b.check_recovered(c, up_conn, upstream_reset=True)


# --- bad bodies: the head was sent, the client's connection is cut ------------------------

def test_invalid_chunk_size_cuts_the_response(bad_upstream):
    """A chunked body whose second chunk size is not hex: the client got the head and the
    first chunk; the body must not look complete (no last chunk) and the connection closes."""
    b = bad_upstream(Script(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n", 0.3, b"zz\r\nworld\r\n0\r\n\r\n"))
    c, up_conn = b.open_pooled()
    c.send(httpraw.build_request(target="/bad"))
    head, raw = _cut(c)
    assert head.status == 200
    assert raw.startswith(b"5\r\nhello\r\n"), raw
    assert b"0\r\n\r\n" not in raw and b"world" not in raw, raw
    b.check_recovered(c, up_conn)


def test_close_mid_body_content_length_cuts_the_response(bad_upstream):
    b = bad_upstream(Script(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100,
                            0.3, CLOSE))
    c, up_conn = b.open_pooled()
    c.send(httpraw.build_request(target="/bad"))
    r = c.read_response(timeout=10)
    assert r.status == 200 and r.framing == "length"
    assert not r.complete and r.body == b"x" * 100, r
    assert c.eof
    b.check_recovered(c, up_conn)


def test_close_mid_body_chunked_cuts_the_response(bad_upstream):
    b = bad_upstream(Script(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n", 0.3, CLOSE))
    c, up_conn = b.open_pooled()
    c.send(httpraw.build_request(target="/bad"))
    head, raw = _cut(c)
    assert head.status == 200
    assert raw == b"5\r\nhello\r\n", raw  # no last chunk
    b.check_recovered(c, up_conn)


# --- a response before the request body was read ------------------------------------------

def test_early_response_to_large_post(bad_upstream):
    """The upstream answers 413 (Connection: close) as soon as the head of a 16 MiB POST
    arrives and never reads the body. The client gets the 413 within a bound (zproxy must
    not wait for the body to go through first), then zproxy closes the client connection
    (the body was not read to its end) and the upstream one."""
    early_resp = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 10\r\n" \
                 b"Connection: close\r\n\r\ntoo large\n"

    def early(conn, index, method, target, length):
        return early_resp if target == "/bad" else None

    b = bad_upstream(None, early=early, drain_early=False)
    c, up_conn = b.open_pooled()
    size = 16 << 20
    c.send(httpraw.build_request(method="POST", target="/bad",
                                 headers=[("Content-Length", str(size))]))
    sent = [0]

    def pump():
        chunk = b"p" * 65536
        try:
            while sent[0] < size:
                c.sock.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass  # zproxy closed the connection: expected

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    t0 = time.monotonic()
    r = c.read_response(timeout=10)
    took = time.monotonic() - t0
    assert r.status == 413 and r.body == b"too large\n", r
    assert took < 5, took
    assert sent[0] < size, "the whole body went through before the response arrived"
    assert "close" in r.connection_tokens(), r.headers
    assert c.is_closed(5)
    t.join(10)
    assert not t.is_alive(), "the client's body upload is stuck"
    b.check_recovered(c, up_conn, unread=True)


# --- 1xx ------------------------------------------------------------------------------------

def test_a_few_1xx_are_all_forwarded_then_the_final(bad_upstream):
    """Ten 103 Early Hints in one burst (more than the client's queue takes at once): all
    reach the client, in order, then the final response with its head."""
    b = bad_upstream(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" * 10 +
                     b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfinal\n")
    c, _ = b.open_pooled()
    c.send(httpraw.build_request(target="/bad"))
    interim = []
    r = c.read_response(timeout=10, interim=interim)
    assert [i.status for i in interim] == [103] * 10, interim
    assert r.status == 200 and r.body == b"final\n", r
    c.close()


def test_flood_of_1xx_then_final(bad_upstream):
    """1000 x 100 Continue in one burst, then the final 200: bounded, the client gets a
    well-formed final response (200, or a 502) within 10 s, and the next request on the
    connection gets the right answer."""
    b = bad_upstream(b"HTTP/1.1 100 Continue\r\n\r\n" * 1000 +
                     b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfinal\n")
    c, up_conn = b.open_pooled()
    c.send(httpraw.build_request(target="/bad"))
    interim = []
    t0 = time.monotonic()
    try:
        r = c.read_response(timeout=10, interim=interim)
    except (socket.timeout, ValueError, httpraw.ConnectionClosed) as e:
        pytest.fail("no well-formed final response within 10 s: %d x 100 Continue, then %r (%s)"
                    % (len(interim), c.buf[:200], e))
    assert time.monotonic() - t0 < 10
    assert r.status in (200, 502), r
    if r.status == 200:
        assert r.body == b"final\n"
    assert len(interim) <= 1000
    print("1000 x 100 Continue: the client got %d of them, then %d" % (len(interim), r.status))
    # Nothing desynchronised: a 100 left over would be read as the answer to this one.
    try:
        c.send(httpraw.build_request(target="/good"))
        r2 = c.read_response(timeout=5)
    except (OSError, httpraw.ConnectionClosed):
        c.close()
        c = httpraw.Conn(b.z.port, timeout=10)
        c.send(httpraw.build_request(target="/good"))
        r2 = c.read_response(timeout=5)
    assert r2.status == 200 and r2.body.startswith(b"good from conn "), r2
    c.close()


def _endless_1xx():
    while True:
        yield b"HTTP/1.1 100 Continue\r\n\r\n"
        yield 0.002


def test_endless_1xx_is_bounded(bad_upstream):
    """An upstream that sends 100 Continue every 2 ms and never a final response: zproxy
    must end the exchange (502/504) within a bound instead of forwarding 1xx forever."""
    b = bad_upstream(Script(_endless_1xx()), read_timeout_ms=1000)
    c, up_conn = b.open_pooled()
    c.send(httpraw.build_request(target="/bad"))
    interim = []
    try:
        r = c.read_response(timeout=8, interim=interim)
    except socket.timeout:
        pytest.fail("no final response within 8 s; the client got %d x 100 Continue"
                    % len(interim))
    assert r.status in (502, 504), r
    b.check_recovered(c, up_conn)


# --- a slow head ----------------------------------------------------------------------------

def _drip(data, interval):
    for i in range(len(data)):
        yield data[i:i + 1]
        yield interval


def test_drip_slower_than_read_timeout_is_504(bad_upstream):
    """1 byte/s of the response head with read_timeout_ms 600: no byte for 600 ms -> 504,
    well before the head could complete."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    b = bad_upstream(Script(_drip(head, 1.0)), read_timeout_ms=600)
    c, up_conn = b.open_pooled()
    c.send(httpraw.build_request(target="/bad"))
    t0 = time.monotonic()
    r = c.read_response(timeout=10)
    took = time.monotonic() - t0
    assert r.status == 504 and r.body == b"zproxy: upstream read timeout\n", r
    assert 0.5 <= took < 3, took
    b.check_recovered(c, up_conn)


def test_drip_faster_than_read_timeout_counts_as_activity(bad_upstream):
    """read_timeout_ms is "no response bytes for this long" (docs/configuration.md), like
    nginx's proxy_read_timeout (between two successive reads, not for the whole response): a
    head dripped at one byte per 100 ms with read_timeout_ms 500 is slow but alive, and the
    client gets the 200 after ~4 s. (A total bound on the response head, such as the client
    side's request_header_timeout_ms, does not exist for upstreams.)"""
    head = b"HTTP/1.1 200 OK\r\nContent-Length:2\r\n\r\nok"
    b = bad_upstream(Script(_drip(head, 0.1)), read_timeout_ms=500)
    c, up_conn = b.open_pooled()
    c.send(httpraw.build_request(target="/bad"))
    t0 = time.monotonic()
    r = c.read_response(timeout=20)
    took = time.monotonic() - t0
    assert r.status == 200 and r.body == b"ok", r
    assert took >= len(head) * 0.1 * 0.8, took
    # A complete, well-framed response: the connection stays usable on both sides.
    c.send(httpraw.build_request(target="/good"))
    r = c.read_response(timeout=5)
    assert r.status == 200 and r.body == b"good from conn %d\n" % up_conn.index, r
    c.close()
