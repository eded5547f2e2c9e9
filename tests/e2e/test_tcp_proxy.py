"""tcp_proxy listeners (L4 pass-through, userspace copy mode): bytes intact both ways,
half-close forwarded each way, RST and connect failures close the client, nothing leaks."""

import hashlib
import random
import socket
import struct
import threading
import time

from procs import base_config, wait_until
from test_metrics import scrape


class Upstream:
    """Reads until the client's FIN, then answers with the SHA-256 of what it got, a
    1 MB pseudo-random payload, and its own FIN. mode="rst" resets every connection."""

    def __init__(self, mode="echo"):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.payload = random.Random(7).randbytes(1 << 20)
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def _handle(self, c):
        with c:
            if self.mode == "rst":
                c.recv(1)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            h = hashlib.sha256()
            while True:
                b = c.recv(65536)
                if not b:
                    break
                h.update(b)
            c.sendall(h.digest() + self.payload)
            c.shutdown(socket.SHUT_WR)

    def close(self):
        self.sock.close()


def _tcp_config(upstream_addr):
    return base_config([{"name": "db", "address": "127.0.0.1:0", "tcp_proxy": {"cluster": "db"}}],
                       [{"name": "db", "endpoints": [upstream_addr]}])


def _roundtrip(port, data):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)  # half-close: the upstream must see EOF and still answer
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    return got


def test_megabyte_each_way_with_half_close(make_proxy):
    up = Upstream()
    z = make_proxy(_tcp_config(up.addr))
    data = random.Random(1).randbytes(1 << 20)
    got = _roundtrip(z.port, data)
    assert got[:32] == hashlib.sha256(data).digest()  # client -> upstream intact, FIN forwarded
    assert got[32:] == up.payload  # upstream -> client intact, FIN forwarded
    fams = scrape(z)
    assert fams["zproxy_tcp_proxy_connections_total"].value() == 1
    assert fams["zproxy_tcp_proxy_bytes_total"].value() >= 2 * (1 << 20)


def test_many_short_connections_leave_nothing_open(make_proxy):
    up = Upstream()
    z = make_proxy(_tcp_config(up.addr))
    for i in range(200):
        got = _roundtrip(z.port, b"x%d" % i)
        assert got[:32] == hashlib.sha256(b"x%d" % i).digest()

    def all_closed():
        fams = scrape(z)
        return fams["zproxy_connections_open"].value() == 0
    assert wait_until(all_closed, 5)


def test_upstream_reset_closes_client(make_proxy):
    up = Upstream(mode="rst")
    z = make_proxy(_tcp_config(up.addr))
    s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
    s.sendall(b"hello")
    t0 = time.monotonic()
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    assert time.monotonic() - t0 < 3
    s.close()


def test_unreachable_upstream_closes_client(make_proxy):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    addr = "127.0.0.1:%d" % dead.getsockname()[1]
    dead.close()  # nothing listens there: connect refused
    z = make_proxy(_tcp_config(addr))
    s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    s.close()
