"""Client-side timeouts of an HTTP listener (docs/configuration.md, `http:`):

- `request_header_timeout_ms`: a request head that does not complete in time gets
  `408 zproxy: request header timeout` and the connection is closed; nothing reaches the
  upstream. The clock starts when the head starts (accept, or the first byte of the next
  request on a keep-alive connection) and bytes trickling in do not restart it (slowloris).
- `idle_timeout_ms`: a keep-alive connection without a request is closed after it, not
  before, counted from the end of the last response.

Timers run on the data plane's 50 ms tick; the tolerances below allow for a busy machine.
"""

import select
import socket
import time

import pytest

import httpraw
from backendlog import canary_target
from conftest import catch_all, cluster, listener
from procs import Backend, base_config

HEADER_TIMEOUT_MS = 2500
IDLE_TIMEOUT_MS = 1500
EARLY = 0.15  # a timer may fire this much before its nominal time (tick rounding)
LATE = 1.0    # and this much after it on a loaded machine


@pytest.fixture
def backend(tmp_path):
    b = Backend("t", str(tmp_path))
    yield b
    b.stop()


def _proxy(make_proxy, backend, **http):
    cfg = base_config([listener("web", catch_all("app"), **http)],
                      [cluster("app", backend.addr)])
    return make_proxy(cfg)


def _drip(sock, data, interval, until):
    """Sends `data` one byte every `interval` seconds until the proxy answers (or closes) or
    `until` (monotonic) passes. Returns (time the first response byte or EOF was seen,
    bytes received so far)."""
    for i in range(len(data)):
        try:
            sock.sendall(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy closed: its answer (if any) is in our receive queue
        deadline = min(time.monotonic() + interval, until)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([sock], [], [], left)
            if r:
                return time.monotonic(), _recv_some(sock)
        if time.monotonic() >= until:
            break
    return None, b""


def _recv_some(sock):
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def _read_rest(sock, got, timeout=3.0):
    """Everything until EOF (a reset counts as EOF); raises socket.timeout if none comes."""
    sock.settimeout(timeout)
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return got, "reset"
        if not data:
            return got, "eof"
        got += data


SLOW_HEAD = (b"GET /slowloris HTTP/1.1\r\nHost: test.local\r\nUser-Agent: drip\r\n"
             b"X-Padding: " + b"p" * 40 + b"\r\n\r\n")


def test_slowloris_gets_408_after_request_header_timeout(make_proxy, backend):
    """A client dripping its head at 1 byte/s on a fresh connection: 408 once the header
    timeout (counted from accept) has passed, although bytes keep arriving; connection
    closed; the backend never saw the request."""
    z = _proxy(make_proxy, backend, request_header_timeout_ms=HEADER_TIMEOUT_MS)
    mark = backend.log.mark()
    t_conn = time.monotonic()
    s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
    try:
        t_answer, got = _drip(s, SLOW_HEAD, 1.0, t_conn + HEADER_TIMEOUT_MS / 1000.0 + 4)
        assert t_answer is not None, "no answer %.1f s after the connect (header timeout %d ms)" \
            % (time.monotonic() - t_conn, HEADER_TIMEOUT_MS)
        elapsed = t_answer - t_conn
        got, how = _read_rest(s, got)
    finally:
        s.close()
    assert HEADER_TIMEOUT_MS / 1000.0 - EARLY <= elapsed <= HEADER_TIMEOUT_MS / 1000.0 + LATE, \
        "answer after %.2f s, header timeout %d ms" % (elapsed, HEADER_TIMEOUT_MS)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), got[:200]
    assert b"connection: close" in head.lower(), head
    assert body == b"zproxy: request header timeout\n", body
    assert how == "eof", "the 408 was followed by a %s, not a clean close" % how
    # Nothing was forwarded: a canary sent afterwards is the first thing the backend logs.
    canary = canary_target()
    assert httpraw.request(z.port, target=canary).status == 200
    assert backend.log.wait_for_req(mark, canary)
    assert backend.log.reqs_since(mark) == [("GET", canary)]


def test_header_timeout_on_keep_alive_starts_with_the_next_head(make_proxy, backend):
    """On a keep-alive connection the header timeout of the second request counts from its
    first byte (the idle time before it is the idle timeout's business): the 408 comes
    header-timeout after that byte, not after the previous response."""
    z = _proxy(make_proxy, backend, request_header_timeout_ms=HEADER_TIMEOUT_MS,
               idle_timeout_ms=20000)
    mark = backend.log.mark()
    c = httpraw.Conn(z.port)
    s = c.sock
    try:
        c.send(httpraw.build_request(target="/first"))
        assert c.read_response().status == 200
        time.sleep(1.5)  # idle: must not eat into the next head's header timeout
        t_first_byte = time.monotonic()
        t_answer, got = _drip(s, SLOW_HEAD, 1.0, t_first_byte + HEADER_TIMEOUT_MS / 1000.0 + 4)
        assert t_answer is not None, "no 408 %.1f s after the second head began" % (
            time.monotonic() - t_first_byte)
        got, _ = _read_rest(s, c.buf + got)
    finally:
        s.close()
    elapsed = t_answer - t_first_byte
    assert HEADER_TIMEOUT_MS / 1000.0 - EARLY <= elapsed <= HEADER_TIMEOUT_MS / 1000.0 + LATE, \
        "408 after %.2f s from the head's first byte, header timeout %d ms" % (
            elapsed, HEADER_TIMEOUT_MS)
    assert got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert [t for _, t in backend.log.reqs_since(mark)] == ["/first"]


def _open_for(sock, seconds):
    """True if the peer neither sent anything nor closed for `seconds`."""
    r, _, _ = select.select([sock], [], [], seconds)
    return not r


def _closed_within(sock, seconds):
    """Seconds until EOF (or reset) with no bytes before it; None if still open."""
    t0 = time.monotonic()
    r, _, _ = select.select([sock], [], [], seconds)
    if not r:
        return None
    assert _recv_some(sock) == b"", "the proxy sent bytes on an idle connection"
    return time.monotonic() - t0


def test_idle_keep_alive_connection_closed_after_idle_timeout_not_before(make_proxy, backend):
    z = _proxy(make_proxy, backend, idle_timeout_ms=IDLE_TIMEOUT_MS)
    idle = IDLE_TIMEOUT_MS / 1000.0
    with httpraw.Conn(z.port) as c:
        c.send(httpraw.build_request(target="/"))
        assert c.read_response().status == 200
        t_resp = time.monotonic()
        # A request at 2/3 of the timeout still finds the connection open, and restarts the
        # clock: the close must come idle_timeout after this second response.
        assert _open_for(c.sock, idle * 2 / 3), "closed %.2f s into a %d ms idle timeout" % (
            time.monotonic() - t_resp, IDLE_TIMEOUT_MS)
        c.send(httpraw.build_request(target="/"))
        r = c.read_response()
        assert r.status == 200 and "close" not in r.connection_tokens()
        t_resp = time.monotonic()
        assert _open_for(c.sock, idle - EARLY), "closed %.2f s after the last response, " \
            "idle timeout %d ms" % (time.monotonic() - t_resp, IDLE_TIMEOUT_MS)
        took = _closed_within(c.sock, EARLY + LATE)
        assert took is not None, "still open %.2f s after the last response (idle timeout " \
            "%d ms)" % (time.monotonic() - t_resp, IDLE_TIMEOUT_MS)
