"""Drain with idle keep-alive connections open (docs/configuration.md: "drain_timeout_ms:
SIGTERM/SIGINT: stop accepting, finish in-flight requests"). SIGTERM to zproxyd with three idle
keep-alive clients and one in-flight slow request:
- the in-flight request completes (200, full body), with Connection: close;
- an idle client that sends a request during the short grace the data plane gives idle
  connections gets its answer with Connection: close, then the close;
- the idle clients that stay silent are closed cleanly (EOF, no bytes) while the slow
  request is still running, not at the end of the drain;
- zproxyd exits 0 once the in-flight request is done, well within drain_timeout_ms.
"""

import re
import select
import signal
import threading
import time

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config, wait_until

SLOW_MS = 3000
DRAIN_TIMEOUT_MS = 8000
DRAINING = re.compile(r"dataplane\[\d+\] info: signal \d+: draining \(up to %d ms\)"
                      % DRAIN_TIMEOUT_MS)


def _eof_within(sock, seconds):
    """Seconds until a clean EOF with no bytes; None if nothing arrived. Fails on bytes."""
    t0 = time.monotonic()
    r, _, _ = select.select([sock], [], [], seconds)
    if not r:
        return None
    data = sock.recv(65536)  # a reset raises: not a clean close
    assert data == b"", "unexpected bytes on an idle connection: %r" % data[:200]
    return time.monotonic() - t0


def test_sigterm_with_idle_keep_alive_clients_and_one_in_flight(make_proxy, backends):
    a = backends["a"]
    cfg = base_config([listener("web", catch_all("app"))], [cluster("app", a.addr)],
                      drain_timeout_ms=DRAIN_TIMEOUT_MS)
    z = make_proxy(cfg, expect_rc=None)  # the exit code is checked here
    idle = []
    for _ in range(3):
        c = httpraw.Conn(z.port, timeout=10)
        c.send(httpraw.build_request(target="/"))
        r = c.read_response()
        assert r.status == 200 and "close" not in r.connection_tokens()
        idle.append(c)
    mark = a.log.mark()
    result = {}

    def slow():
        try:
            with httpraw.Conn(z.port, timeout=15) as c:
                c.send(httpraw.build_request(target="/slow/%d" % SLOW_MS))
                result["resp"] = c.read_response()
                result["closed"] = c.is_closed(2.0)
        except Exception as e:  # reported below
            result["error"] = e

    t = threading.Thread(target=slow)
    t.start()
    try:
        assert a.log.wait_for_req(mark, "/slow/%d" % SLOW_MS), "slow request not upstream"
        t_term = time.monotonic()
        z.proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: DRAINING.search(z.stderr()), 3, 0.01), \
            "the data plane never said it drains"
        # One idle client sends a request now, inside the idle connections' grace period.
        time.sleep(0.1)  # the workers start draining on their next 50 ms tick
        c0 = idle[0]
        sent_at = time.monotonic() - t_term
        c0.send(httpraw.build_request(target="/during-grace"))
        try:
            r = c0.read_response(timeout=5)
            assert r.status == 200, r
            assert "close" in r.connection_tokens(), \
                "a response during the drain without Connection: close: %r" % r.headers
            assert c0.is_closed(2.0), "connection left open after Connection: close"
        except httpraw.ConnectionClosed:
            # Only acceptable if this machine was so slow the grace had passed.
            assert sent_at > 0.9, "closed unanswered %.2f s after SIGTERM" % sent_at
        # The silent idle clients are closed cleanly while the slow request still runs.
        for c in idle[1:]:
            left = SLOW_MS / 1000.0 - 0.3 - (time.monotonic() - t_term)
            took = _eof_within(c.sock, max(left, 0.0))
            assert took is not None, "idle connection still open %.2f s after SIGTERM " \
                "(slow request of %d ms still in flight)" % (time.monotonic() - t_term, SLOW_MS)
        assert t.is_alive(), "the in-flight request ended before the idle ones were closed"
    finally:
        t.join(15)
        for c in idle:
            c.close()
    assert "error" not in result, "in-flight request failed: %r" % result.get("error")
    r = result["resp"]
    assert r.status == 200 and r.body == b"slow %d\n" % SLOW_MS, r
    assert "close" in r.connection_tokens(), r.headers
    assert result["closed"]
    rc = z.proc.wait(DRAIN_TIMEOUT_MS / 1000.0 + 5)
    took = time.monotonic() - t_term
    assert rc == 0, "zproxyd exited %s:\n%s" % (rc, z.stderr()[-3000:])
    # It waited for the slow request, and no longer than needed (not the drain timeout).
    assert SLOW_MS / 1000.0 - 0.5 <= took < DRAIN_TIMEOUT_MS / 1000.0 - 2, \
        "zproxyd exited %.2f s after SIGTERM" % took
    assert "drain deadline passed" not in z.stderr()
