"""zproxyd's listener on metrics_address (controlplane/probes): GET /live, GET /ready (200
once a data plane serves the listeners on the current config; 503 while draining or with no
data plane) and /metrics forwarded from the data plane; one slow client, or many idle ones,
cannot hold it: /ready and /metrics still answer while they hang on."""

import os
import signal
import socket
import threading
import time

import httpraw
import promtext
from conftest import catch_all, cluster, listener
from procs import SIGKILLED, base_config, dataplane_restarted, wait_until
from test_dataplane_sync import _pid


def _cfg(a, **top):
    return base_config([listener("web", catch_all("a"))], [cluster("a", a.addr)], **top)


def _get(z, path, timeout=2):
    return httpraw.request(z.metrics_port, target=path, timeout=timeout)


def _status(z, path):
    try:
        r = _get(z, path, timeout=1)
        return r.status, r.body
    except (OSError, httpraw.ConnectionClosed) as e:
        return None, repr(e).encode()


def test_live_ready_metrics_and_unknown_paths(make_proxy, backends):
    z = make_proxy(_cfg(backends["a"]))
    assert httpraw.request(z.port, target="/count-me").status == 200
    live = _get(z, "/live")
    assert live.status == 200 and live.body == b"live\n"
    # The listener answers a moment before the data plane's sync stream (what /ready waits
    # for) is up.
    assert wait_until(lambda: _status(z, "/ready")[0] == 200, 5), _status(z, "/ready")
    ready = _get(z, "/ready")
    assert ready.status == 200, ready.body
    assert ready.body == b"ready: data plane pid %d serves config version 1\n" % _pid(z)
    m = _get(z, "/metrics")
    assert m.status == 200 and m.header("content-type").startswith("text/plain; version=0.0.4")
    families = promtext.parse(m.body.decode())
    assert families["zproxy_requests_total"].value() >= 1, m.body[:500]
    assert _get(z, "/metrics?x=1").status == 200
    assert _get(z, "/nope").status == 404
    head = httpraw.request(z.metrics_port, method="HEAD", target="/ready")
    assert head.status == 200 and head.body == b""
    assert httpraw.request(z.metrics_port, method="POST", target="/ready").status == 405


def test_ready_is_503_without_a_data_plane_then_200_again(make_proxy, backends):
    z = make_proxy(_cfg(backends["a"]), allow_stderr=(dataplane_restarted(SIGKILLED),))
    dp = _pid(z)
    assert wait_until(lambda: _status(z, "/ready")[0] == 200, 5), _status(z, "/ready")
    seen = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            seen.append(_status(z, "/ready"))
            time.sleep(0.003)

    t = threading.Thread(target=poll)
    t.start()
    try:
        time.sleep(0.05)
        os.kill(dp, signal.SIGKILL)
        assert wait_until(lambda: _pid(z) not in (dp, -1) and _status(z, "/ready")[0] == 200, 10)
    finally:
        stop.set()
        t.join(5)
    bodies = [b for s, b in seen if s == 503]
    assert bodies, "no 503 while the data plane was gone: %r" % seen[-5:]
    assert any(b in (b"not ready: no data plane running\n",) or b"is starting" in b
               for b in bodies), bodies[:5]
    assert seen[-1][0] == 200 and seen[0][0] == 200
    # /live stayed 200 throughout: zproxyd itself was fine.
    assert _get(z, "/live").status == 200


def test_ready_is_503_while_draining(make_proxy, backends):
    a = backends["a"]
    z = make_proxy(_cfg(a, drain_timeout_ms=5000), expect_rc=None)
    mark = a.log.mark()
    result = {}

    def slow():
        result["r"] = httpraw.request(z.port, target="/slow/1500", timeout=10)

    t = threading.Thread(target=slow)
    t.start()
    assert a.log.wait_for_req(mark, "/slow/1500")
    z.proc.send_signal(signal.SIGTERM)
    try:
        # The metrics port stays up through the drain and says so.
        assert wait_until(lambda: _status(z, "/ready") ==
                          (503, b"not ready: draining: zproxyd is stopping\n"), 1), \
            _status(z, "/ready")
        assert _status(z, "/live")[0] == 200
    finally:
        t.join(10)
    assert result["r"].status == 200
    assert z.proc.wait(10) == 0


def test_slow_and_idle_clients_cannot_hold_the_metrics_port(make_proxy, backends):
    z = make_proxy(_cfg(backends["a"]))
    held = []
    try:
        # One client sends half a request and stops; ten more connect and send nothing.
        slow = socket.create_connection(("127.0.0.1", z.metrics_port))
        slow.sendall(b"GET /rea")
        held.append(slow)
        for _ in range(10):
            held.append(socket.create_connection(("127.0.0.1", z.metrics_port)))
        time.sleep(0.2)
        for _ in range(5):
            t0 = time.monotonic()
            assert _get(z, "/ready", timeout=1).status == 200
            m = _get(z, "/metrics", timeout=1)
            assert m.status == 200 and b"zproxy_requests_total" in m.body
            assert time.monotonic() - t0 < 0.5
        # The slow one is cut after its deadline (5 s to send a request head), not served.
        slow.settimeout(8)
        t0 = time.monotonic()
        assert slow.recv(100) == b""
        assert 3 < time.monotonic() - t0 + 0.2 < 7.5
    finally:
        for s in held:
            s.close()


def test_clients_over_the_bound_get_503_at_once(make_proxy, backends):
    z = make_proxy(_cfg(backends["a"]))
    held = [socket.create_connection(("127.0.0.1", z.metrics_port)) for _ in range(64)]
    try:
        time.sleep(0.2)
        r = _get(z, "/ready", timeout=1)
        assert r.status == 503 and b"too many clients" in r.body, r.body
    finally:
        for s in held:
            s.close()
    assert wait_until(lambda: _status(z, "/ready")[0] == 200, 3)
