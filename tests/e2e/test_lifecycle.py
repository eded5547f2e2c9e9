"""Graceful shutdown, several workers, data plane restart after SIGKILL."""

import os
import signal
import socket
import threading
import time

import httpraw
from conftest import catch_all, cluster, listener
from procs import SIGKILLED, base_config, dataplane_restarted, wait_until


def _cfg(backend, **top):
    return base_config([listener("web", catch_all("app"))], [cluster("app", backend.addr)], **top)


def _refused(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            # Accepted by a lingering socket: refused in effect only if closed unanswered.
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            return s.recv(1) == b""
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    except OSError:
        return False


def test_sigterm_drains_in_flight_request(make_proxy, backends):
    a = backends["a"]
    z = make_proxy(_cfg(a, drain_timeout_ms=5000), expect_rc=None)
    mark = a.log.mark()
    result = {}

    def slow():
        try:
            result["resp"] = httpraw.request(z.port, target="/slow/1500", timeout=10)
        except Exception as e:  # reported below: the in-flight request must survive
            result["error"] = e

    t = threading.Thread(target=slow)
    t.start()
    assert a.log.wait_for_req(mark, "/slow/1500"), "slow request never reached the backend"
    t0 = time.monotonic()
    z.proc.send_signal(signal.SIGTERM)
    try:
        assert wait_until(lambda: _refused(z.port), 1.2), "new connections still served"
    finally:
        t.join(10)
    assert "error" not in result, "in-flight request failed: %r" % result.get("error")
    assert result["resp"].status == 200 and result["resp"].body == b"slow 1500\n"
    z.proc.wait(10)
    took = time.monotonic() - t0
    assert z.proc.returncode == 0, z.stderr()
    assert took < 5.0, "exit took %.1fs (drain_timeout_ms 5000)" % took


def test_two_workers_serve(make_proxy, backends):
    z = make_proxy(_cfg(backends["a"], workers=2))
    conns = [httpraw.Conn(z.port) for _ in range(10)]
    try:
        for c in conns:
            c.send(httpraw.build_request(target="/"))
        for c in conns:
            assert c.read_response().body == b"hello from a\n"
    finally:
        for c in conns:
            c.close()


def test_dataplane_restarted_after_sigkill(make_proxy, backends):
    # zproxyd reports the dead data plane; that is the point of this test.
    z = make_proxy(_cfg(backends["a"]), allow_stderr=(dataplane_restarted(SIGKILLED),))
    pids = wait_until(z.dataplane_pids, 5)
    assert len(pids) == 1, "expected one data plane child, got %r" % pids
    os.kill(pids[0], signal.SIGKILL)

    def serving_again():
        try:
            return httpraw.request(z.port, timeout=1).status == 200
        except (OSError, httpraw.ConnectionClosed):
            return False

    assert wait_until(serving_again, 8, 0.1), "not serving 8s after the data plane was killed"
    new = z.dataplane_pids()
    assert new and new[0] != pids[0]


def test_sigkill_of_dataplane_under_load_refuses_no_connection(make_proxy, backends):
    # zproxyd holds the listen sockets, so while the data plane is dead and restarting,
    # new connections wait in the accept queue: wrk must see zero connect errors. Only
    # requests in flight at the moment of the kill may fail (read errors).
    import re
    import subprocess
    import time
    z = make_proxy(_cfg(backends["a"]), allow_stderr=(dataplane_restarted(SIGKILLED),))
    pids = wait_until(z.dataplane_pids, 5)
    w = subprocess.Popen(["wrk", "-t1", "-c20", "-d3s", "-H", "Connection: close",
                          "http://127.0.0.1:%d/" % z.port],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)
    os.kill(pids[0], signal.SIGKILL)
    out = w.communicate(timeout=30)[0]
    m = re.search(r"Socket errors: connect (\d+)", out)
    assert m is None or int(m.group(1)) == 0, out
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    assert reqs > 100, out
    new = z.dataplane_pids()
    assert new and new[0] != pids[0]
