"""zproxy's own answers to HEAD carry no content (RFC 9110 §9.3.2): an upstream failure (502),
no matching route (404) and a rate limit (429) answer a HEAD with the head only. A body there
would be read by a keep-alive HTTP/1.1 client as the start of its next response, and an
HTTP/2 client rejects DATA on a HEAD stream."""

import socket
import subprocess

from conftest import cluster, listener
from procs import base_config, free_port


def _proxy(make_proxy):
    routes = [
        {"match": {"prefix": "/dead"}, "cluster": "dead"},
        {"match": {"prefix": "/limited"}, "cluster": "dead",
         "rate_limit": {"requests_per_second": 1, "burst": 1}},
    ]
    dead = "127.0.0.1:%d" % free_port()  # nothing listens: connect refused
    return make_proxy(base_config([listener("web", routes)], [cluster("dead", dead)]))


def _exchange(port, raw):
    """Sends `raw` (pipelined requests, the last with Connection: close), returns all bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                return out
            out += d


def test_http1_head_errors_have_no_body_and_keep_the_connection_in_step(make_proxy):
    z = _proxy(make_proxy)
    for target in ("/dead", "/nowhere", "/limited", "/limited"):
        raw = (b"HEAD %s HTTP/1.1\r\nHost: t\r\n\r\n"
               b"GET /nowhere HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") % target.encode()
        data = _exchange(z.port, raw)
        first, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        status = first.split(b" ", 2)[1]
        assert status in (b"502", b"404", b"429"), data
        assert b"content-length:" in first.lower(), first  # the length a GET would get
        # The next bytes are the second response's status line, not the first one's body.
        assert rest.startswith(b"HTTP/1.1 404 "), (target, data)


def test_http2_head_errors_have_no_data(make_proxy):
    z = _proxy(make_proxy)
    for target in ("/dead", "/nowhere"):
        r = subprocess.run(["curl", "-sS", "-I", "--http2-prior-knowledge", "--max-time", "5",
                            "-o", "/dev/null", "-w", "%{http_code}",
                            "http://127.0.0.1:%d%s" % (z.port, target)],
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, (target, r.returncode, r.stderr)
        assert r.stdout in ("502", "404"), (target, r.stdout)
