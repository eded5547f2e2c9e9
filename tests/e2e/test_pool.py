"""The per-worker upstream keep-alive pool (docs/configuration.md, clusters):

- `idle_timeout_ms`: a pooled connection is closed after it (seen at the backend: its socket
  leaves ESTABLISHED), not before, and the next request opens a new connection.
- "a pooled connection found closed is retried once on a fresh connection (requests without
  a body)": an upstream that closes a keep-alive connection when the next request arrives
  (what a server whose keep-alive timeout fires at that moment does); the client gets the
  fresh connection's 200 and `zproxy_upstream_retries_total` counts it. A request with a
  body is not resent: 502.
"""

import os
import signal
import time

import pytest

import httpraw
from conftest import catch_all, cluster, listener
from procs import Backend, base_config, free_port, start_nginx_http, stop_process, wait_until
from scripted_upstream import ScriptedUpstream, response
from test_metrics import scrape

POOL_IDLE_MS = 1200


def _established_at(port):
    """Sockets in ESTABLISHED whose local port is `port` (the backend's side of each
    connection to it), from /proc/net/tcp{,6}."""
    want = ":%04X" % port
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if fields[1].endswith(want) and fields[3] == "01":
                    n += 1
    return n


@pytest.fixture
def backend(tmp_path):
    b = Backend("pool", str(tmp_path))
    yield b
    b.stop()


def test_pooled_connection_closed_after_idle_timeout_then_new_one(make_proxy, backend):
    cfg = base_config([listener("web", catch_all("app"))],
                      [cluster("app", backend.addr, idle_timeout_ms=POOL_IDLE_MS)])
    z = make_proxy(cfg)
    # The harness's readiness probe went through the pool too: let that connection expire.
    assert wait_until(lambda: _established_at(backend.port) == 0, POOL_IDLE_MS / 1000.0 + 3)
    mark = backend.log.mark()
    assert httpraw.request(z.port, target="/one").status == 200
    # Within the idle timeout the pooled connection is reused: no second connect.
    time.sleep(POOL_IDLE_MS / 1000.0 / 3)
    assert httpraw.request(z.port, target="/two").status == 200
    t_release = time.monotonic()
    assert len(backend.log.conns_since(mark)) == 1, backend.log.lines_since(mark)
    assert _established_at(backend.port) == 1
    # Not closed before the timeout (counted from when it went back to the pool)...
    time.sleep(max(0.0, t_release + POOL_IDLE_MS / 1000.0 - 0.3 - time.monotonic()))
    assert _established_at(backend.port) == 1, \
        "pooled connection closed %.2f s after its last use (idle_timeout_ms %d)" % (
            time.monotonic() - t_release, POOL_IDLE_MS)
    # ...closed after it: the backend sees the proxy's FIN and its socket leaves ESTABLISHED.
    assert wait_until(lambda: _established_at(backend.port) == 0,
                      t_release + POOL_IDLE_MS / 1000.0 + 0.8 - time.monotonic(), 0.02), \
        "pooled connection still open %.2f s after its last use (idle_timeout_ms %d)" % (
            time.monotonic() - t_release, POOL_IDLE_MS)
    closed_after = time.monotonic() - t_release
    assert closed_after >= POOL_IDLE_MS / 1000.0 - 0.15, closed_after
    fams = scrape(z)
    assert fams["zproxy_connections_idle"].value(side="upstream") == 0
    assert fams["zproxy_connections_open"].value(side="upstream") == 0
    # The next request needs a new connection.
    assert httpraw.request(z.port, target="/three").status == 200
    assert len(backend.log.conns_since(mark)) == 2, backend.log.lines_since(mark)


def _close_on_second_request(conn, index, method, target, body):
    """First request on each connection: 200 keep-alive. Second: the upstream closes the
    connection without an answer, as if its keep-alive timeout had just fired."""
    if target.startswith("/__zproxy_e2e_ready"):
        return response(close=True)  # the harness's readiness probe: not pooled
    if index == 0:
        return response(body=b"from conn %d\n" % conn.index)
    return None


@pytest.fixture
def stale_upstream():
    up = ScriptedUpstream(_close_on_second_request)
    yield up
    up.close()


def _stale_proxy(make_proxy, up):
    """The proxy, and the number of upstream connections its readiness probes made."""
    cfg = base_config([listener("web", catch_all("app"))], [cluster("app", up.addr)])
    z = make_proxy(cfg)
    return z, len(up.conns)


def _requests_after(up, first):
    """[(conn index - first, method, target)] of the connections from `first` on."""
    return [(c - first, m, t) for c, m, t in up.requests() if c >= first]


def test_request_on_stale_pooled_connection_retried_on_fresh_one(make_proxy, stale_upstream):
    up = stale_upstream
    z, n = _stale_proxy(make_proxy, up)
    r = httpraw.request(z.port, target="/one")
    assert r.status == 200 and r.body == b"from conn %d\n" % n
    retries = scrape(z)["zproxy_upstream_retries_total"].value()
    # /two goes out on the pooled connection 0, which the upstream closes on reading it;
    # zproxy sends it again on a new connection 1, whose answer the client gets.
    r = httpraw.request(z.port, target="/two")
    assert r.status == 200, r
    assert r.body == b"from conn %d\n" % (n + 1), r.body
    assert _requests_after(up, n) == [(0, "GET", "/one"), (0, "GET", "/two"), (1, "GET", "/two")]
    assert scrape(z)["zproxy_upstream_retries_total"].value() == retries + 1


def test_request_with_body_on_stale_pooled_connection_not_resent(make_proxy, stale_upstream):
    up = stale_upstream
    z, n = _stale_proxy(make_proxy, up)
    assert httpraw.request(z.port, target="/one").status == 200
    retries = scrape(z)["zproxy_upstream_retries_total"].value()
    r = httpraw.request(z.port, method="POST", target="/post", body=b"payload")
    assert r.status == 502, r
    assert r.body == b"zproxy: upstream closed connection before response\n", r.body
    # The upstream got the POST once; it was not repeated on another connection.
    assert _requests_after(up, n) == [(0, "GET", "/one"), (0, "POST", "/post")]
    assert len(up.conns) == n + 1
    assert scrape(z)["zproxy_upstream_retries_total"].value() == retries


def test_pooled_connection_closed_by_nginx_keepalive_timeout(make_proxy, tmp_path):
    """A real server's keep-alive timeout (nginx, keepalive_timeout 1s) closes the pooled
    connection while it is idle: zproxy notices the close (the connection leaves its pool)
    and the next request gets a 200 on a new connection, not a 502."""
    d = str(tmp_path / "nginx")
    os.makedirs(d)
    port = free_port()
    ngx = start_nginx_http(d, ["""
  server {
    listen 127.0.0.1:%d;
    keepalive_timeout 1s;
    location / { return 200 "nginx\\n"; }
  }""" % port], [port])
    try:
        cfg = base_config([listener("web", catch_all("ngx"))],
                          [cluster("ngx", "127.0.0.1:%d" % port)])
        z = make_proxy(cfg)
        assert httpraw.request(z.port, target="/a").body == b"nginx\n"
        assert scrape(z)["zproxy_connections_idle"].value(side="upstream") == 1
        # nginx closes it after 1 s idle; the pool drops it when the FIN arrives.
        assert wait_until(
            lambda: scrape(z)["zproxy_connections_open"].value(side="upstream") == 0, 3), \
            "the pooled connection nginx closed is still open in zproxy"
        errors = scrape(z)["zproxy_errors_total"].value()
        r = httpraw.request(z.port, target="/b")
        assert r.status == 200 and r.body == b"nginx\n", r
        assert scrape(z)["zproxy_errors_total"].value() == errors
    finally:
        stop_process(ngx, 5, signal.SIGQUIT)
