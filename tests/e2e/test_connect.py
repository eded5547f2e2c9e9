"""HTTP CONNECT on HTTP listeners. Without a `connect` block a listener answers CONNECT
itself with 403 and never forwards it to a route's cluster (the backend sees nothing)."""

import socket

from test_metrics import scrape


def _read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        if not b:
            break
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def _connect_count(z, outcome):
    return scrape(z)["zproxy_connect_requests_total"].value(outcome=outcome)


def test_connect_without_connect_block_is_403_and_not_forwarded(stack, backends):
    a = backends["a"]
    target = a.addr
    before = _connect_count(stack, "not_enabled")
    mark = a.log.mark()
    s = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    with s:
        s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target.encode(), target.encode()))
        head, rest = _read_head(s)
        assert head.startswith("HTTP/1.1 403"), head
        body_len = int([l for l in head.split("\r\n") if l.lower().startswith("content-length")][0]
                       .split(":")[1])
        while len(rest) < body_len:
            rest += s.recv(4096)
        assert b"CONNECT is not enabled" in rest
        # The connection stays usable for ordinary requests (as after a 404).
        s.sendall(b"GET / HTTP/1.1\r\nHost: test.local\r\n\r\n")
        head, _ = _read_head(s)
        assert head.startswith("HTTP/1.1 200"), head
    assert _connect_count(stack, "not_enabled") == before + 1
    # The backend served the GET and saw no CONNECT.
    a.log.wait_for_req(mark, "/")
    assert [m for m, _ in a.log.reqs_since(mark)] == ["GET"]
