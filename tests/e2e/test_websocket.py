"""WebSocket through an HTTP listener: the Upgrade request reaches the upstream with its
Upgrade/Connection fields, the 101 reaches the client, and then both connections are a byte
tunnel (frames echoed intact both ways, 1 MB included; close handshake; idle timeout).
The upstream is a small RFC 6455 echo server here; the client speaks raw sockets."""

import base64
import hashlib
import os
import random
import socket
import struct
import threading
import time

from conftest import listener
from procs import base_config, wait_until
from test_metrics import scrape

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


def _accept_key(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def _recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(n - len(buf))
        if not b:
            raise ConnectionError("EOF after %d of %d bytes" % (len(buf), n))
        buf += b
    return bytes(buf)


def _read_head(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(1)
        if not b:
            raise ConnectionError("EOF in head: %r" % buf)
        buf += b
    lines = buf.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            fields.setdefault(k.strip().lower(), []).append(v.strip())
    return lines[0], fields


def _frame(opcode, payload, mask):
    head = bytes([0x80 | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if n < 4096 else \
        (int.from_bytes(payload, "big") ^ int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
    return head + key + masked


def _read_frame(s):
    b0, b1 = _recv_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", _recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", _recv_exact(s, 8))[0]
    key = _recv_exact(s, 4) if b1 & 0x80 else None
    payload = _recv_exact(s, n)
    if key:
        payload = (int.from_bytes(payload, "big") ^
                   int.from_bytes((key * (n // 4 + 1))[:n], "big")).to_bytes(n, "big") if n else b""
    return b0 & 0x0F, payload


class EchoServer:
    """Answers a WebSocket upgrade with 101 and echoes every frame; anything else gets 400."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.heads = []
        self.closed = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def _handle(self, c):
        with c:
            try:
                line, f = _read_head(c)
                self.heads.append((line, f))
                key = f.get("sec-websocket-key", [""])[0].encode()
                if "websocket" not in [v.lower() for v in f.get("upgrade", [])] or not key or \
                        "upgrade" not in ",".join(f.get("connection", [])).lower():
                    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    return
                c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + _accept_key(key) +
                          b"\r\n\r\n")
                while True:
                    op, payload = _read_frame(c)
                    c.sendall(_frame(op, payload, mask=False))
                    if op == 8:  # close: echoed, then done
                        break
            except (ConnectionError, OSError):
                pass
            finally:
                self.closed += 1


def _upgrade(port, key=b"dGhlIHNhbXBsZSBub25jZQ=="):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    status, fields = _read_head(s)
    return s, status, fields


def _proxy(make_proxy, up, **http):
    cfg = base_config([listener("web", [{"match": {"prefix": "/"}, "cluster": "ws"}], **http)],
                      [{"name": "ws", "endpoints": [up.addr]}])
    return make_proxy(cfg)


def test_websocket_echo_through_the_tunnel(make_proxy):
    up = EchoServer()
    z = _proxy(make_proxy, up)
    s, status, fields = _upgrade(z.port)
    assert status.startswith("HTTP/1.1 101"), status
    assert fields["sec-websocket-accept"] == [_accept_key(b"dGhlIHNhbXBsZSBub25jZQ==").decode()]
    assert fields["upgrade"] == ["websocket"]
    assert "upgrade" in fields["connection"][0].lower()
    # The upstream saw the upgrade as asked, plus the proxy's forwarding fields.
    line, seen = up.heads[-1]
    assert line == "GET /chat HTTP/1.1" and seen["upgrade"] == ["websocket"]
    assert "x-forwarded-for" in seen
    rng = random.Random(5)
    for size in (0, 5, 125, 126, 65535, 65536, 1 << 20):
        payload = rng.randbytes(size)
        s.sendall(_frame(2, payload, mask=True))
        op, got = _read_frame(s)
        assert op == 2 and got == payload, size
    s.sendall(_frame(1, b"hello", mask=True) + _frame(1, b"world", mask=True))  # back to back
    assert _read_frame(s) == (1, b"hello") and _read_frame(s) == (1, b"world")
    s.sendall(_frame(8, struct.pack("!H", 1000), mask=True))
    assert _read_frame(s) == (8, struct.pack("!H", 1000))
    assert s.recv(1) == b""  # the upstream closed: its FIN reached the client
    s.close()
    assert wait_until(lambda: scrape(z)["zproxy_connections_open"].value() == 0, 5)
    fams = scrape(z)
    assert fams["zproxy_upgrades_total"].value() == 1
    assert fams["zproxy_requests_total"].value(**{"class": "1xx"}) == 1


def test_upgrade_refused_by_upstream_stays_http(make_proxy):
    up = EchoServer()
    z = _proxy(make_proxy, up)
    s = socket.create_connection(("127.0.0.1", z.port), timeout=10)
    # No Sec-WebSocket-Key: the upstream answers 400 and the connection stays HTTP.
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\n\r\n")
    status, fields = _read_head(s)
    assert status.startswith("HTTP/1.1 400")
    s.close()
    assert scrape(z)["zproxy_upgrades_total"].value() == 0


def test_idle_websocket_is_closed(make_proxy):
    up = EchoServer()
    z = _proxy(make_proxy, up, idle_timeout_ms=400)
    s, status, _ = _upgrade(z.port)
    assert status.startswith("HTTP/1.1 101")
    s.sendall(_frame(1, b"ping", mask=True))
    assert _read_frame(s) == (1, b"ping")
    t0 = time.monotonic()
    assert s.recv(1) == b""
    assert 0.2 < time.monotonic() - t0 < 3
    s.close()
