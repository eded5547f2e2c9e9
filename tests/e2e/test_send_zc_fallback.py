"""SEND_ZC refused by the kernel, and cuts the client could take for the end of a body.

A data plane started without CAP_IPC_LOCK has its io_uring ring charge SEND_ZC's pinned pages
to RLIMIT_MEMLOCK; with a tiny limit the kernel refuses zero-copy sends with ENOMEM. Every
body must still arrive whole (the refused bytes go again with a plain send), the worker must
stop using SEND_ZC after a few refusals with one log line, and /metrics must say so.

A response framed by the connection's close must never end with a FIN when it was cut: the
client gets a reset. Real zproxyd, prlimit/setpriv (util-linux), raw sockets."""

import hashlib
import os
import shutil
import socket
import struct
import threading

import pytest

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config
from test_metrics import scrape

# 64 KiB of locked memory for the whole process and no CAP_IPC_LOCK (bounding and
# inheritable sets): the ring is charged for what SEND_ZC pins, and refuses almost all of it.
ZC_REFUSED = ("prlimit", "--memlock=65536:65536", "--",
              "setpriv", "--bounding-set=-ipc_lock", "--inh-caps=-all")

# The rings themselves are charged too (RLIMIT_MEMLOCK is compared with everything the user
# root has charged, machine-wide): small ones leave room for another run of this test.
SMALL_RING = {"send_zc_threshold": 1, "sq_depth": 64, "buf_count": 64}

FALLBACK_LINE = "fallback: the kernel refused SEND_ZC"


def _need_tools():
    if os.geteuid() != 0:
        pytest.skip("needs root (to drop CAP_IPC_LOCK from a root data plane)")
    for tool in ("prlimit", "setpriv"):
        if shutil.which(tool) is None:
            pytest.skip("needs %s (util-linux)" % tool)


def _fetch(port, n):
    r = httpraw.request(port, target="/bytes/%d" % n, timeout=20)
    return r.status, r.framing, r.complete, len(r.body), hashlib.sha256(r.body).hexdigest()


def test_refused_zero_copy_resends_the_bytes_plainly(make_proxy, backends):
    _need_tools()
    cfg = base_config([listener("web", catch_all("app"))], [cluster("app", backends["a"].addr)],
                      io_uring=SMALL_RING)
    z = make_proxy(cfg, wrapper=ZC_REFUSED)
    n = 2_000_003
    want = hashlib.sha256(httpraw.pattern(n)).hexdigest()
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _fetch(z.port, n), range(16)))
    bad = [r for r in results if r != (200, "length", True, n, want)]
    assert not bad, "%d of %d bodies damaged: %s" % (len(bad), len(results), bad[:4])

    fams = scrape(z)
    assert fams["zproxy_send_zc_total"].value() > 0  # zero-copy was really tried
    assert fams["zproxy_send_zc_fallbacks_total"].value() >= 4
    assert fams["zproxy_send_zc_disabled"].value() == 1
    assert fams["zproxy_dataplane_info"].samples[0][1]["send_zc"] == "off_after_errors"
    lines = [l for l in z.stderr().splitlines() if FALLBACK_LINE in l]
    assert len(lines) == 1, lines
    assert "Cannot allocate memory" in lines[0] and "RLIMIT_MEMLOCK" in lines[0], lines[0]

    # Once off, it stays off: more bodies, no more attempts, still one line.
    zc_before = fams["zproxy_send_zc_total"].value()
    for _ in range(3):
        assert _fetch(z.port, n) == (200, "length", True, n, want)
    fams = scrape(z)
    assert fams["zproxy_send_zc_total"].value() == zc_before
    assert len([l for l in z.stderr().splitlines() if FALLBACK_LINE in l]) == 1


def test_zero_copy_without_refusals_stays_on(make_proxy, backends):
    """The control: same load, CAP_IPC_LOCK kept: nothing refused, SEND_ZC stays on."""
    cfg = base_config([listener("web", catch_all("app"))], [cluster("app", backends["a"].addr)],
                      io_uring={"send_zc_threshold": 1})
    z = make_proxy(cfg)
    n = 2_000_003
    want = hashlib.sha256(httpraw.pattern(n)).hexdigest()
    for _ in range(4):
        assert _fetch(z.port, n) == (200, "length", True, n, want)
    fams = scrape(z)
    assert fams["zproxy_send_zc_total"].value() > 0
    assert fams["zproxy_send_zc_fallbacks_total"].value() == 0
    assert fams["zproxy_send_zc_disabled"].value() == 0
    assert fams["zproxy_dataplane_info"].samples[0][1]["send_zc"] == "1"
    assert FALLBACK_LINE not in z.stderr()


class ResettingUpstream:
    """Answers every request with a close-delimited 200 (no Content-Length), sends part of
    the body, then resets the connection (SO_LINGER 0): the body was cut."""

    def __init__(self, body_bytes):
        self.body_bytes = body_bytes
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    d = conn.recv(65536)
                    if not d:
                        break
                    buf += d
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Connection: close\r\n\r\n" + b"x" * self.body_bytes)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self):
        self.sock.close()


def _read_to_end(port):
    """(bytes read, 'eof' or 'reset') for one GET on a fresh connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /cut HTTP/1.1\r\nHost: t\r\n\r\n")
    got = b""
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                return got, "eof"
            got += d
    except ConnectionResetError:
        return got, "reset"
    finally:
        s.close()


def test_cut_close_delimited_body_reaches_the_client_as_a_reset(make_proxy):
    up = ResettingUpstream(300_000)
    try:
        cfg = base_config([listener("web", catch_all("cut"))], [cluster("cut", up.addr)])
        z = make_proxy(cfg)
        for _ in range(5):
            got, end = _read_to_end(z.port)
            assert got.startswith(b"HTTP/1.1 200"), got[:100]
            assert b"content-length" not in got.split(b"\r\n\r\n")[0].lower()
            # A FIN here would make the cut body indistinguishable from a complete one.
            assert end == "reset", "close-delimited body cut by the upstream ended with a FIN " \
                                   "(%d bytes)" % len(got)
    finally:
        up.close()
