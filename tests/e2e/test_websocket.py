"""WebSocket through an HTTP listener: the Upgrade request reaches the upstream with its
Upgrade/Connection fields, the 101 reaches the client, and then both connections are a byte
tunnel (frames echoed intact both ways, 1 MB included; close handshake; idle timeout), in
each tunnel mode (sockmap: the pair is in the SOCKHASH during the transfer, read with
bpftool; splice; copy); bytes pipelined behind the Upgrade request and behind the 101 arrive
in order; without IORING_OP_FIXED_FD_INSTALL, or with a TLS client, the tunnel copies
(one log line, counted by reason); tunnel_mode is validated naming the field.
The upstream is a small RFC 6455 echo server here; the client speaks raw sockets."""

import base64
import hashlib
import os
import random
import socket
import struct
import threading
import time

import pytest

import machine
from conftest import listener
from procs import base_config, run_check, wait_until
from test_metrics import scrape
from tunnel_modes import MODES, assert_no_pairs, assert_paired_now, mode_count, require_mode

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

    def __init__(self, greeting=b""):
        self.greeting = greeting  # a frame sent in the same segment as the 101
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
                          b"\r\n\r\n" + self.greeting)
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


def _proxy(make_proxy, up, mode=None, allow_stderr=(), **http):
    lst = listener("web", [{"match": {"prefix": "/"}, "cluster": "ws"}], **http)
    if mode is not None:
        lst["tunnel_mode"] = mode
    cfg = base_config([lst], [{"name": "ws", "endpoints": [up.addr]}])
    z = make_proxy(cfg, allow_stderr=allow_stderr)
    if mode is not None:
        require_mode(z, mode)
    return z


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


@pytest.mark.parametrize("mode", MODES)
def test_idle_websocket_is_closed(make_proxy, mode):
    up = EchoServer()
    z = _proxy(make_proxy, up, mode, idle_timeout_ms=400)
    s, status, _ = _upgrade(z.port)
    assert status.startswith("HTTP/1.1 101")
    s.sendall(_frame(1, b"ping", mask=True))
    assert _read_frame(s) == (1, b"ping")
    t0 = time.monotonic()
    assert s.recv(1) == b""
    assert 0.2 < time.monotonic() - t0 < 3
    s.close()


@pytest.mark.parametrize("mode", MODES)
def test_websocket_megabyte_each_way_in_each_mode(make_proxy, mode):
    """1 MB of random bytes each way through the echo, in the listener's tunnel mode; in
    sockmap mode both sockets are in the SOCKHASH while the bytes flow, and leave it after."""
    up = EchoServer()
    z = _proxy(make_proxy, up, mode)
    s, status, _ = _upgrade(z.port)
    assert status.startswith("HTTP/1.1 101"), status
    s.sendall(_frame(1, b"hi", mask=True))
    assert _read_frame(s) == (1, b"hi")
    assert wait_until(lambda: mode_count(z, mode) == 1, 3)  # the hand-over is done
    if mode == "sockmap":
        assert_paired_now(z)
    payload = random.Random(11).randbytes(1 << 20)
    sender = threading.Thread(target=s.sendall, args=(_frame(2, payload, mask=True),))
    sender.start()
    assert _read_frame(s) == (2, payload)
    sender.join()
    if mode == "sockmap":
        assert_paired_now(z)
    s.sendall(_frame(8, struct.pack("!H", 1000), mask=True))
    assert _read_frame(s) == (8, struct.pack("!H", 1000))
    assert s.recv(1) == b""  # the upstream's FIN went through
    s.close()
    assert wait_until(lambda: scrape(z)["zproxy_connections_open"].value() == 0, 5)
    fams = scrape(z)
    # Counted in every mode (sockmap: from tcp_info when the tunnel ends).
    assert fams["zproxy_tcp_proxy_bytes_total"].value() >= 2 << 20
    assert fams["zproxy_upgrades_total"].value() == 1
    if mode == "sockmap":
        assert fams["zproxy_sockmap_spliced_bytes_total"].value() >= 2 << 20
        assert fams["zproxy_sockmap_stragglers_total"].value() == 0
        assert_no_pairs(z)


@pytest.mark.parametrize("mode", MODES)
def test_bytes_pipelined_behind_the_heads_arrive_in_order(make_proxy, mode):
    """The client sends a frame in the same segment as its Upgrade request, the upstream a
    frame in the same segment as its 101: both were read into userspace before the tunnel
    existed and must come out first, before anything the kernel carries later."""
    up = EchoServer(greeting=_frame(1, b"greeting", mask=False))
    z = _proxy(make_proxy, up, mode)
    s = socket.create_connection(("127.0.0.1", z.port), timeout=10)
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n" + _frame(1, b"pipelined", mask=True))
    status, _ = _read_head(s)
    assert status.startswith("HTTP/1.1 101"), status
    assert _read_frame(s) == (1, b"greeting")
    assert _read_frame(s) == (1, b"pipelined")
    for i in range(20):  # then through the kernel (sockmap/splice), still in order
        s.sendall(_frame(1, b"after-%d" % i, mask=True))
    for i in range(20):
        assert _read_frame(s) == (1, b"after-%d" % i)
    assert wait_until(lambda: mode_count(z, mode) == 1, 3)  # the hand-over is done
    s.close()


def test_without_fixed_fd_install_websocket_copies(make_proxy, monkeypatch):
    """ZPROXY_DISABLE_FD_INSTALL=1 behaves as a kernel without IORING_OP_FIXED_FD_INSTALL:
    one log line, the listener reports copy, the tunnel works and counts why."""
    monkeypatch.setenv("ZPROXY_DISABLE_FD_INSTALL", "1")
    up = EchoServer()
    z = _proxy(make_proxy, up, None)
    log = z.stderr()
    assert log.count("ZPROXY_DISABLE_FD_INSTALL=1") == 1, log
    assert 'listener "web": tunnel mode auto requested, using copy' in log, log
    fams = scrape(z)
    assert fams["zproxy_dataplane_info"].samples[0][1]["fd_install"] == "0"
    s, status, _ = _upgrade(z.port)
    assert status.startswith("HTTP/1.1 101"), status
    payload = random.Random(12).randbytes(200000)
    s.sendall(_frame(2, payload, mask=True))
    assert _read_frame(s) == (2, payload)
    s.close()
    fams = scrape(z)
    assert fams["zproxy_passthrough_connections_total"].value(mode="copy") == 1
    if machine.has("sockmap") or machine.has("io_uring_splice"):
        # auto would have paired it: the missing install is why it copied.
        assert fams["zproxy_dataplane_info"].samples[0][1]["passthrough_auto"] != "copy"
        assert fams["zproxy_tunnel_fallbacks_total"].value(reason="no_fd_install") == 1


def test_tunnel_mode_is_validated_naming_the_field(tmp_path):
    import yamlgen
    cases = [
        # Not a mode: the YAML mapping names the field and lists the choices.
        ({"name": "web", "address": "127.0.0.1:1", "tunnel_mode": "kernel",
          "routes": [{"match": {"prefix": "/"}, "cluster": "ws"}]}, "tunnel_mode", "sockmap"),
        # A tcp_proxy listener has no WebSocket/CONNECT: its mode is tcp_proxy.mode.
        ({"name": "db", "address": "127.0.0.1:1", "tunnel_mode": "splice",
          "tcp_proxy": {"cluster": "ws"}}, "listeners[0].tunnel_mode", "tcp_proxy.mode"),
    ]
    for lst, field, needle in cases:
        cfg = base_config([lst], [{"name": "ws", "endpoints": ["127.0.0.1:2"]}],
                          admin_address="unix:/tmp/zp-check/admin.sock")
        p = tmp_path / "c.yaml"
        p.write_text(yamlgen.dump(cfg))
        r = run_check(str(p))
        assert r.returncode == 1, (r.stdout, r.stderr)
        assert field in r.stderr and needle in r.stderr, r.stderr


def test_tls_client_tunnel_stays_copy_and_counts_why(make_proxy, tmp_path):
    """A WebSocket through a TLS listener: its bytes pass through BoringSSL in the data
    plane, so even with tunnel_mode sockmap the tunnel copies (counted as client_tls)."""
    import ssl
    from tlscerts import Certs
    (tmp_path / "certs").mkdir()
    certs = Certs(str(tmp_path / "certs"))
    up = EchoServer()
    lst = listener("web", [{"match": {"prefix": "/"}, "cluster": "ws"}])
    lst["tls"] = {"certificates": [certs.ecdsa]}
    lst["tunnel_mode"] = "sockmap"
    z = make_proxy(base_config([lst], [{"name": "ws", "endpoints": [up.addr]}]))
    ctx = ssl.create_default_context(cafile=certs.path("ca.pem"))
    raw = socket.create_connection(("127.0.0.1", z.port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname="example.com")
    s.sendall(b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    status, _ = _read_head(s)
    assert status.startswith("HTTP/1.1 101"), status
    payload = random.Random(13).randbytes(300000)
    s.sendall(_frame(2, payload, mask=True))
    assert _read_frame(s) == (2, payload)
    s.close()
    fams = scrape(z)
    assert fams["zproxy_passthrough_connections_total"].value(mode="copy") == 1
    if machine.has("sockmap"):
        # Without TLS this listener would have spliced: TLS is why it copied.
        assert fams["zproxy_dataplane_info"].samples[0][1]["sockmap"] == "1"
        assert fams["zproxy_tunnel_fallbacks_total"].value(reason="client_tls") == 1
