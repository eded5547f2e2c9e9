"""HTTP/2 abuse from clients, with raw frames (python3-h2 for the framing, frames written
by hand where h2 would refuse): rapid reset (CVE-2023-44487), CONTINUATION flood, HPACK
bomb, SETTINGS and PING floods, a window never opened, idle connections. Each must end
in a bounded cost for zproxy and keep serving everyone else."""

import re
import socket
import struct
import time

import h2.connection
import h2.config
import h2.events
import hpack
import pytest

from conftest import catch_all, cluster, listener
from procs import base_config

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 0xB


def frame(ftype, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def settings(*pairs):
    return frame(0x4, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def read_frames(sock, timeout=5.0):
    """Frames until the peer closes or goes quiet: [(type, flags, stream, payload)]."""
    sock.settimeout(timeout)
    buf = b""
    out = []
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            buf += data
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                out.append((buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF,
                            buf[9:9 + n]))
                buf = buf[9 + n:]
            if any(f[0] == 0x7 for f in out):  # GOAWAY: what we wait for
                sock.settimeout(0.5)
    except (socket.timeout, ConnectionResetError):
        pass
    return out


def goaway_code(frames):
    for t, _, _, payload in frames:
        if t == 0x7:
            return int.from_bytes(payload[4:8], "big")
    return None


def headers_block(path, enc=None, extra=()):
    enc = enc or hpack.Encoder()
    return enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "abuse.test"),
                       (":path", path)] + list(extra))


@pytest.fixture
def proxy(make_proxy, backends):
    return make_proxy(base_config(
        [listener("web", catch_all("a"), idle_timeout_ms=1500)],
        [cluster("a", backends["a"].addr)]))


def still_serves(port):
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        d = c.recv(65536)
        if not d:
            break
        data += d
    c.close()
    return data.startswith(b"HTTP/1.1 200")


def dataplane_rss_kb(z):
    pid = int(re.findall(r"data plane started: pid (\d+)", z.stderr())[-1])
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def test_rapid_reset_gets_enhance_your_calm_and_bounded_upstream_cost(proxy, backends):
    mark = backends["a"].log.mark()
    s = socket.create_connection(("127.0.0.1", proxy.port))
    enc = hpack.Encoder()
    out = [PREFACE, settings()]
    for i in range(2000):
        sid = 1 + 2 * i
        out.append(frame(0x1, 0x4 | 0x1, sid, headers_block("/slow/1000", enc)))  # END_HEADERS|END_STREAM
        out.append(frame(0x3, 0, sid, struct.pack(">I", 0x8)))  # RST_STREAM CANCEL
    try:
        s.sendall(b"".join(out))
    except (BrokenPipeError, ConnectionResetError):
        pass
    frames = read_frames(s)
    s.close()
    assert goaway_code(frames) == ENHANCE_YOUR_CALM, [f[0] for f in frames][-5:]
    # The upstream saw a bounded share of the 2000 requests.
    seen = len(backends["a"].log.conns_since(mark))
    assert seen < 400, seen
    assert still_serves(proxy.port)


def test_continuation_flood_is_cut(proxy):
    s = socket.create_connection(("127.0.0.1", proxy.port))
    enc = hpack.Encoder()
    block = headers_block("/", enc)
    out = [PREFACE, settings(), frame(0x1, 0, 1, block)]  # HEADERS without END_HEADERS
    piece = enc.encode([("x-flood", "v" * 50)])
    out += [frame(0x9, 0, 1, piece) for _ in range(5000)]  # CONTINUATION, never ending
    try:
        s.sendall(b"".join(out))
    except (BrokenPipeError, ConnectionResetError):
        pass
    frames = read_frames(s)
    s.close()
    assert goaway_code(frames) is not None, "no GOAWAY after a CONTINUATION flood"
    assert still_serves(proxy.port)


def test_hpack_bomb_is_refused_with_431(proxy):
    s = socket.create_connection(("127.0.0.1", proxy.port))
    enc = hpack.Encoder()
    big = ("x-bomb", "b" * 4000)
    first = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                        (":path", "/"), big])  # indexes the 4 KB field
    # Then the same field referenced 200 times: 800 KB decoded from ~200 bytes.
    bomb = enc.encode([(":method", "GET"), (":scheme", "http"), (":authority", "a"),
                       (":path", "/")] + [big] * 200)
    s.sendall(PREFACE + settings() + frame(0x1, 0x5, 1, first) + frame(0x1, 0x5, 3, bomb))
    frames = read_frames(s, timeout=3)
    s.close()
    dec = hpack.Decoder()
    statuses = {}
    for t, flags, sid, payload in frames:
        if t == 0x1:
            statuses[sid] = dict(dec.decode(payload)).get(":status")
    assert statuses.get(1) == "200", statuses
    assert statuses.get(3) == "431", statuses  # refused, the connection still fine


def test_settings_and_ping_floods_are_cut(proxy):
    for flood in (settings(), frame(0x6, 0, 0, b"12345678")):
        s = socket.create_connection(("127.0.0.1", proxy.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # we never read the ACKs
        try:
            s.sendall(PREFACE + settings() + flood * 20000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        frames = read_frames(s)
        s.close()
        assert goaway_code(frames) == ENHANCE_YOUR_CALM or frames == [] or \
            goaway_code(frames) is not None, frames[-3:]
    assert still_serves(proxy.port)


def test_window_never_opened_keeps_memory_bounded(proxy):
    before = dataplane_rss_kb(proxy)
    socks = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", proxy.port))
        enc = hpack.Encoder()
        # Initial window 0: not one byte of any response may be sent.
        out = [PREFACE, settings((0x4, 0))]
        for i in range(30):
            out.append(frame(0x1, 0x5, 1 + 2 * i, headers_block("/bytes/10000000", enc)))
        s.sendall(b"".join(out))
        socks.append(s)
    time.sleep(3)
    assert still_serves(proxy.port)
    grown = dataplane_rss_kb(proxy) - before
    for s in socks:
        s.close()
    # 90 streams of 10 MB each (900 MB the upstreams would send): what zproxy holds per
    # stream is bounded, and the worker's shared receive buffers are not exhausted (the
    # proxy keeps serving others meanwhile).
    assert grown < 160 * 1024, "data plane RSS grew by %d KiB" % grown
    assert still_serves(proxy.port)


def test_idle_h2_connection_gets_goaway_and_close(proxy):
    s = socket.create_connection(("127.0.0.1", proxy.port))
    s.sendall(PREFACE + settings())
    t0 = time.monotonic()
    frames = read_frames(s, timeout=5)
    took = time.monotonic() - t0
    s.close()
    assert goaway_code(frames) == 0, frames
    assert 1.0 < took < 4.0, took
