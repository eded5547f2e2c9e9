"""HTTP/2 conformance (RFC 9113, RFC 7541), h2spec-style: frames written by hand, header
blocks from python3-h2's hpack (or byte by byte where a case needs a precise or invalid
encoding), each case run against an h2c listener and a TLS listener (ALPN h2), with backend
"a" behind both.

Every case asserts the exact outcome the RFC asks for:
  connection error -> GOAWAY with that code, then the connection closed (RFC 9113 §5.4.1);
  stream error     -> RST_STREAM with that code on that stream, the connection alive
                      (a PING after it is ACKed), or GOAWAY with that code: RFC 9113
                      §5.4.1 lets an endpoint treat a stream error as a connection error
                      (nghttp2 does for several; h2spec accepts both);
  accepted         -> the request answered (or a PING ACKed), no GOAWAY, no RST_STREAM.
Where the RFC itself lets the receiver choose (a DATA frame over the frame size limit, frames
on closed streams, concurrency refusals) the case says so and accepts exactly those choices.
"""

import json
import os
import socket
import ssl
import struct
import time

import hpack
import pytest
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

from conftest import catch_all, cluster, listener
from procs import base_config
from tlscerts import Certs

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
TYPE_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
              "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]
# Flags.
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20
# Error codes (RFC 9113 §7).
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, HTTP_1_1_REQUIRED = range(14)
CODE_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
              "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
              "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY",
              "HTTP_1_1_REQUIRED"]
# Settings (RFC 9113 §6.5.2).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)

HELLO = b"hello from a\n"
SLOW = "/slow/3000"  # keeps a stream open (half-closed (remote) once its HEADERS ended it)


def code_name(code):
    return CODE_NAMES[code] if 0 <= code < len(CODE_NAMES) else "0x%x" % code


# --- frames, written by hand

def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def settings(*pairs, flags=0, stream=0):
    return frame(SETTINGS, flags, stream, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping(payload=b"12345678", flags=0, stream=0):
    return frame(PING, flags, stream, payload)


def window_update(stream, increment):
    return frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment))


def rst_stream(stream, code):
    return frame(RST_STREAM, 0, stream, struct.pack(">I", code))


def priority(stream, depends_on=0, weight=16, exclusive=False):
    return frame(PRIORITY, 0, stream, priority_fields(depends_on, weight, exclusive))


def priority_fields(depends_on=0, weight=16, exclusive=False):
    return struct.pack(">IB", depends_on | (0x80000000 if exclusive else 0), weight - 1)


def goaway(last_stream, code, debug=b"", stream=0):
    return frame(GOAWAY, 0, stream, struct.pack(">II", last_stream, code) + debug)


def padded(payload, pad):
    return bytes([pad]) + payload + b"\0" * pad


# --- HPACK, byte by byte (RFC 7541), for blocks hpack.Encoder would not write

_huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)


def hint(value, prefix_bits, first=0):
    """RFC 7541 §5.1 integer with an N-bit prefix; `first` holds the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hstr(s, huffman=False):
    s = s.encode() if isinstance(s, str) else s
    if huffman:
        data = _huffman.encode(s)
        return hint(len(data), 7, 0x80) + data
    return hint(len(s), 7) + s


def literal(name, value, huffman=False):
    """Literal field without indexing, new name (§6.2.2): touches no dynamic table."""
    return b"\x00" + hstr(name, huffman) + hstr(value, huffman)


def literals(fields, huffman=False):
    return b"".join(literal(n, v, huffman) for n, v in fields)


def table_size_update(size):
    return hint(size, 5, 0x20)


# --- a raw HTTP/2 connection

class Closed(Exception):
    pass


class Frame:
    def __init__(self, ftype, flags, stream, payload):
        self.type, self.flags, self.stream, self.payload = ftype, flags, stream, payload
        self.headers = None  # the decoded block, on the frame that ends it
        self.block_end_stream = False

    def last_stream(self):
        return int.from_bytes(self.payload[:4], "big") & 0x7FFFFFFF

    def code(self):
        if self.type == GOAWAY:
            return int.from_bytes(self.payload[4:8], "big")
        if self.type == RST_STREAM:
            return int.from_bytes(self.payload[:4], "big")
        return None

    def __repr__(self):
        name = TYPE_NAMES[self.type] if self.type < len(TYPE_NAMES) else "type 0x%x" % self.type
        s = "%s(stream=%d, flags=0x%x, len=%d" % (name, self.stream, self.flags, len(self.payload))
        if self.type == GOAWAY:
            s += ", last=%d, code=%s, debug=%r" % (
                int.from_bytes(self.payload[:4], "big") & 0x7FFFFFFF, code_name(self.code()),
                self.payload[8:])
        elif self.type == RST_STREAM:
            s += ", code=%s" % code_name(self.code())
        elif self.type == PING:
            s += ", payload=%s" % self.payload.hex()
        elif self.type == SETTINGS:
            s += ", %s" % [struct.unpack(">HI", self.payload[i:i + 6])
                           for i in range(0, len(self.payload) - 5, 6)]
        elif self.type == WINDOW_UPDATE:
            s += ", increment=%d" % int.from_bytes(self.payload[:4], "big")
        if self.headers is not None:
            s += ", headers=%s" % self.headers
        return s + ")"


class H2:
    """A raw client connection: frames in and out exactly as written."""

    def __init__(self, proxy, kind):
        self.kind = kind
        self.scheme = "https" if kind == "tls" else "http"
        sock = socket.create_connection(("127.0.0.1", proxy.ports[kind]), timeout=5)
        if kind == "tls":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock, server_hostname="example.com")
            assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.received = []  # every frame, for failure messages
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.block = None  # (first frame, fragments) of a header block being received
        self.server_settings = {}
        self.next_sid = 1

    # sending
    def send(self, *data):
        try:
            self.sock.sendall(b"".join(data))
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the server may already have closed; what it sent before tells

    def sid(self):
        s = self.next_sid
        self.next_sid += 2
        return s

    def fields(self, path="/", method="GET", extra=()):
        return [(":method", method), (":scheme", self.scheme), (":authority", "conf.test"),
                (":path", path)] + list(extra)

    def block_for(self, path="/", method="GET", extra=()):
        return self.enc.encode(self.fields(path, method, extra))

    def request(self, path="/", method="GET", extra=(), end_stream=True, sid=None):
        sid = sid or self.sid()
        flags = END_HEADERS | (END_STREAM if end_stream else 0)
        self.send(frame(HEADERS, flags, sid, self.block_for(path, method, extra)))
        return sid

    # receiving
    def raw_recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.eof = True
            raise Closed()
        return data

    def recv_frame(self, timeout=5.0):
        """The next frame; None after `timeout` seconds of silence; Closed at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    f = Frame(self.buf[3], self.buf[4],
                              int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF,
                              self.buf[9:9 + n])
                    self.buf = self.buf[9 + n:]
                    self._decode(f)
                    self.received.append(f)
                    return f
            if self.eof:
                raise Closed()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            data = self.raw_recv(left)
            if data is None:
                return None
            self.buf += data

    def _decode(self, f):
        if f.type == HEADERS:
            p = f.payload
            pad = 0
            if f.flags & PADDED:
                pad, p = p[0], p[1:]
            if f.flags & PRIORITY_FLAG:
                p = p[5:]
            p = p[:len(p) - pad]
            self.block = (f, [p])
        elif f.type == CONTINUATION and self.block is not None:
            self.block[1].append(f.payload)
        else:
            return
        if f.flags & END_HEADERS:
            first, parts = self.block
            self.block = None
            f.headers = [(n.decode() if isinstance(n, bytes) else n,
                          v.decode() if isinstance(v, bytes) else v)
                         for n, v in self.dec.decode(b"".join(parts))]
            f.block_end_stream = bool(first.flags & END_STREAM)

    def history(self):
        return "frames received: %s" % self.received

    # the preface exchange
    def handshake(self, *pairs):
        self.send(PREFACE, settings(*pairs))
        first = self.recv_frame()
        assert first is not None and first.type == SETTINGS and not first.flags & ACK \
            and first.stream == 0, "the server's first frame is not SETTINGS: " + self.history()
        for i in range(0, len(first.payload), 6):
            k, v = struct.unpack(">HI", first.payload[i:i + 6])
            self.server_settings[k] = v
        self.send(settings(flags=ACK))
        self.wait_for(lambda f: f.type == SETTINGS and f.flags & ACK, "the SETTINGS ACK")
        return self

    def wait_for(self, pred, what, timeout=5.0, fail=None):
        """Frames until pred(frame); fails on EOF, silence, or fail(frame)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except Closed:
                pytest.fail("connection closed while waiting for %s; %s" % (what, self.history()))
            if f is None:
                pytest.fail("no %s within %.0fs; %s" % (what, timeout, self.history()))
            if pred(f):
                return f
            if fail is not None and fail(f):
                pytest.fail("got %r while waiting for %s; %s" % (f, what, self.history()))

    # outcomes
    def expect_goaway(self, code):
        """A connection error: GOAWAY with `code`, then the connection closed."""
        deadline = time.monotonic() + 5
        while True:
            try:
                f = self.recv_frame(max(0.0, deadline - time.monotonic()))
            except Closed:
                pytest.fail("connection closed without GOAWAY (expected GOAWAY %s); %s"
                            % (code_name(code), self.history()))
            if f is None:
                pytest.fail("no GOAWAY within 5s (expected GOAWAY %s); %s"
                            % (code_name(code), self.history()))
            if f.type == GOAWAY:
                break
            if f.type == RST_STREAM:
                pytest.fail("stream error %r instead of connection error GOAWAY %s; %s"
                            % (f, code_name(code), self.history()))
        assert f.code() == code, "GOAWAY %s, expected %s; %s" % (
            code_name(f.code()), code_name(code), self.history())
        self.expect_eof("after GOAWAY %s" % code_name(code))
        return f

    def expect_eof(self, what, timeout=3.0):
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self.recv_frame(max(0.0, deadline - time.monotonic()))
        except Closed:
            return
        pytest.fail("connection not closed %s (RFC 9113 §5.4.1 MUST); %s" % (what, self.history()))

    def expect_rst(self, sid, code):
        """A stream error: RST_STREAM `code` on `sid` and the connection lives on, or the
        same error as a connection error (GOAWAY `code`, then the close; RFC 9113 §5.4.1)."""
        def answered(f):
            return f.stream == sid and f.type in (HEADERS, DATA, CONTINUATION) and (
                f.flags & END_STREAM or f.block_end_stream)
        f = self.wait_for(lambda f: f.type == GOAWAY or (f.type == RST_STREAM and f.stream == sid),
                          "RST_STREAM %s on stream %d" % (code_name(code), sid),
                          fail=answered)
        assert f.code() == code, "%r, expected %s on stream %d; %s" % (
            f, code_name(code), sid, self.history())
        if f.type == GOAWAY:
            self.expect_eof("after GOAWAY %s" % code_name(code))
        else:
            self.expect_alive()
        return f

    def expect_either(self, sid, code):
        """A stream or a connection error of type `code`, where the RFC allows both."""
        f = self.wait_for(lambda f: f.type == GOAWAY or (f.type == RST_STREAM and f.stream == sid),
                          "RST_STREAM or GOAWAY %s" % code_name(code))
        assert f.code() == code, "%r, expected %s; %s" % (f, code_name(code), self.history())
        if f.type == GOAWAY:
            self.expect_eof("after GOAWAY %s" % code_name(code))
        else:
            self.expect_alive()
        return f

    def expect_alive(self):
        """A PING gets its ACK: no connection error happened."""
        payload = os.urandom(8)
        self.send(ping(payload))
        self.wait_for(lambda f: f.type == PING and f.flags & ACK and f.payload == payload,
                      "the PING ACK (connection alive)", fail=lambda f: f.type == GOAWAY)

    def response(self, sid, window_updates=True):
        """(headers dict, body, trailers) of stream `sid`; fails on RST_STREAM or GOAWAY."""
        heads, body = [], b""
        while True:
            f = self.wait_for(lambda f: f.stream == sid and f.type in (HEADERS, CONTINUATION, DATA,
                                                                        RST_STREAM),
                              "the response on stream %d" % sid,
                              fail=lambda f: f.type == GOAWAY)
            if f.type == RST_STREAM:
                pytest.fail("stream %d reset instead of answered: %r; %s"
                            % (sid, f, self.history()))
            if f.type == DATA:
                data = f.payload
                if f.flags & PADDED:
                    data = data[1:len(data) - data[0]]
                body += data
                if window_updates and f.payload:
                    self.send(window_update(0, len(f.payload)), window_update(sid, len(f.payload)))
                if f.flags & END_STREAM:
                    break
            elif f.headers is not None:
                heads.append(dict(f.headers))
                if f.block_end_stream:
                    break
        final = [h for h in heads if not h.get(":status", "200").startswith("1")]
        return final[0], body, (final[1] if len(final) > 1 else None)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --- the proxy: one h2c and one TLS listener in front of backend "a"

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("certs")))


@pytest.fixture(scope="module")
def proxy(backends, certs, tmp_path_factory):
    from conftest import _finish, _live_proxies  # noqa: the module-scoped twin of make_proxy
    from procs import Zproxy
    tls = listener("tls", catch_all("a"))
    tls["tls"] = {"certificates": [certs.ecdsa], "alpn": ["h2", "http/1.1"]}
    cfg = base_config([listener("h2c", catch_all("a")), tls], [cluster("a", backends["a"].addr)])
    z = Zproxy(cfg, str(tmp_path_factory.mktemp("h2conf")), name="h2conf")
    _live_proxies.append(z)
    yield z

    class _Req:  # _finish only reads the node for its report
        node = None
    _finish(z, _Req())


@pytest.fixture(params=["h2c", "tls"])
def kind(request):
    return request.param


@pytest.fixture
def raw(proxy, kind):
    """A connection that has sent nothing yet."""
    c = H2(proxy, kind)
    yield c
    c.close()


@pytest.fixture
def conn(raw):
    """A connection past the preface exchange (both SETTINGS sent and ACKed)."""
    return raw.handshake()


def get_ok(c, path="/", extra=()):
    sid = c.request(path, extra=extra)
    head, body, _ = c.response(sid)
    assert head[":status"] == "200", (head, c.history())
    return head, body


def echo_of(body):
    e = json.loads(body)
    e["h"] = {k.lower(): v for k, v in e["headers"]}
    return e


# === 3.4 connection preface

def test_preface_server_first_frame_is_settings(raw):
    raw.send(PREFACE)  # before the client's own SETTINGS
    f = raw.recv_frame()
    assert f is not None and f.type == SETTINGS and f.flags == 0 and f.stream == 0, raw.history()
    assert len(f.payload) % 6 == 0
    raw.send(settings(), settings(flags=ACK))
    get_ok(raw)


def test_preface_invalid_closes_the_connection(raw):
    # RFC 9113 §3.4: an invalid preface is a connection error PROTOCOL_ERROR; h2spec accepts
    # GOAWAY PROTOCOL_ERROR or the connection closed. On the h2c port bytes that are not the
    # preface are HTTP/1.1 (docs/http2-grpc.md: same port): an HTTP/1.1 error answer then close.
    raw.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + settings())
    got = b""
    deadline = time.monotonic() + 5
    closed = False
    while time.monotonic() < deadline:
        try:
            d = raw.raw_recv(deadline - time.monotonic())
        except Closed:
            closed = True
            break
        if d is None:
            break
        got += d
    assert closed, "connection still open 5s after an invalid preface; got %r" % got[:200]
    if raw.kind == "h2c" and got.startswith(b"HTTP/1.1 "):
        assert got[9:10] in (b"4", b"5"), got[:200]
        return
    raw.buf = got
    frames = []
    try:
        while True:
            f = raw.recv_frame(0)
            if f is None:
                break
            frames.append(f)
    except Closed:
        pass
    assert not raw.buf, "not HTTP/2 frames: %r" % got[:200]
    assert all(f.type in (SETTINGS, GOAWAY) for f in frames), frames
    goaways = [f for f in frames if f.type == GOAWAY]
    assert all(g.code() == PROTOCOL_ERROR for g in goaways), frames


def test_preface_not_followed_by_settings_is_protocol_error(raw):
    # §3.4: the preface MUST be followed by SETTINGS; anything else is an invalid preface.
    raw.send(PREFACE, ping())
    raw.expect_goaway(PROTOCOL_ERROR)


# === 4.1 / 4.2 frame format and sizes (the server's SETTINGS_MAX_FRAME_SIZE: 16384)

def test_frame_size_data_over_max_frame_size(conn):
    max_size = conn.server_settings.get(MAX_FRAME_SIZE, 16384)
    sid = conn.request("/echo", "POST", end_stream=False)
    conn.send(frame(DATA, 0, sid, b"x" * (max_size + 1)))
    # §4.2: FRAME_SIZE_ERROR; for DATA (which alters no connection state) a stream or a
    # connection error.
    conn.expect_either(sid, FRAME_SIZE_ERROR)


def test_frame_size_headers_over_max_frame_size(conn):
    max_size = conn.server_settings.get(MAX_FRAME_SIZE, 16384)
    block = literals(conn.fields("/") + [("x-big", "b" * (max_size + 100))])
    assert len(block) > max_size
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    # §4.2: a frame carrying a field block: connection error.
    conn.expect_goaway(FRAME_SIZE_ERROR)


@pytest.mark.parametrize("length", [3, 7, 9])
def test_frame_size_settings_not_multiple_of_6(conn, length):
    conn.send(frame(SETTINGS, 0, 0, b"\0" * length))
    conn.expect_goaway(FRAME_SIZE_ERROR)  # §6.5


@pytest.mark.parametrize("length", [0, 7, 9])
def test_frame_size_ping_not_8(conn, length):
    conn.send(frame(PING, 0, 0, b"p" * length))
    conn.expect_goaway(FRAME_SIZE_ERROR)  # §6.7


@pytest.mark.parametrize("on_stream", [False, True], ids=["connection", "stream"])
def test_frame_size_window_update_not_4(conn, on_stream):
    sid = conn.request(SLOW) if on_stream else 0
    conn.send(frame(WINDOW_UPDATE, 0, sid, b"\0\0\1"))
    conn.expect_goaway(FRAME_SIZE_ERROR)  # §6.9: always a connection error


def test_frame_size_rst_stream_not_4(conn):
    sid = conn.request(SLOW)
    conn.send(frame(RST_STREAM, 0, sid, b"\0\0\0\0\0"))
    conn.expect_goaway(FRAME_SIZE_ERROR)  # §6.4


def test_frame_size_priority_not_5(conn):
    sid = conn.request(SLOW)  # an open stream: RST_STREAM may not be sent on an idle one
    conn.send(frame(PRIORITY, 0, sid, b"\0\0\0\0"))
    conn.expect_rst(sid, FRAME_SIZE_ERROR)  # §6.3: a stream error


def test_frame_reserved_bit_of_stream_id_ignored(conn):
    # §4.1: the reserved bit MUST be ignored when receiving.
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 0x80000001, conn.block_for("/")))
    head, body, _ = conn.response(1)
    assert (head[":status"], body) == ("200", HELLO)


# === 5.1 stream states

@pytest.mark.parametrize("ftype", ["DATA", "RST_STREAM", "WINDOW_UPDATE", "CONTINUATION"])
def test_state_idle_stream_frames_are_protocol_error(conn, ftype):
    # §5.1 idle: anything but HEADERS or PRIORITY is a connection error PROTOCOL_ERROR.
    conn.send({"DATA": frame(DATA, END_STREAM, 1, b"x"),
               "RST_STREAM": rst_stream(1, CANCEL),
               "WINDOW_UPDATE": window_update(1, 100),
               "CONTINUATION": frame(CONTINUATION, END_HEADERS, 1, conn.block_for("/"))}[ftype])
    conn.expect_goaway(PROTOCOL_ERROR)


def test_state_half_closed_remote_headers_is_stream_closed(conn):
    sid = conn.request(SLOW)  # END_STREAM: half-closed (remote) until the response
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, literals([("x-late", "1")])))
    conn.expect_rst(sid, STREAM_CLOSED)  # §5.1 half-closed (remote): MUST stream error


def test_state_half_closed_remote_data_is_stream_closed(conn):
    sid = conn.request(SLOW)
    conn.send(frame(DATA, END_STREAM, sid, b"late"))
    conn.expect_rst(sid, STREAM_CLOSED)  # §5.1 and §6.1: MUST stream error


def test_state_half_closed_remote_window_update_and_priority_allowed(conn):
    sid = conn.request("/slow/300")
    conn.send(window_update(sid, 1000), priority(sid, 0, 200))
    head, body, _ = conn.response(sid)
    assert (head[":status"], body) == ("200", b"slow 300\n")


@pytest.mark.parametrize("ftype", ["DATA", "HEADERS"])
def test_state_closed_stream_after_end_stream_both_ways(conn, ftype):
    sid = conn.request("/")
    conn.response(sid)  # closed: END_STREAM sent and received
    if ftype == "DATA":
        conn.send(frame(DATA, END_STREAM, sid, b"late"))
    else:
        conn.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, literals([("x-late", "1")])))
    # §6.1 (DATA): stream error STREAM_CLOSED; §5.1 closed: MAY be a connection error
    # STREAM_CLOSED. h2spec http2/5.1/11-12 expects STREAM_CLOSED.
    conn.expect_either(sid, STREAM_CLOSED)


@pytest.mark.parametrize("ftype", ["DATA", "HEADERS"])
def test_state_closed_stream_after_client_rst_stream(conn, ftype):
    sid = conn.request("/echo", "POST", end_stream=False)  # open
    conn.send(rst_stream(sid, CANCEL))
    if ftype == "DATA":
        conn.send(frame(DATA, END_STREAM, sid, b"late"))
    else:
        conn.send(frame(HEADERS, END_HEADERS | END_STREAM, sid, literals([("x-late", "1")])))
    # The server received RST_STREAM: the stream is closed; §6.1 / §5.1 as above
    # (h2spec http2/5.1/8-9).
    conn.expect_either(sid, STREAM_CLOSED)


def test_state_closed_stream_window_update_and_rst_stream_ignored(conn):
    sid = conn.request("/")
    conn.response(sid)
    # §5.1 closed: WINDOW_UPDATE or RST_STREAM may arrive just after END_STREAM was sent:
    # the receiver MUST NOT treat them as errors. PRIORITY is always allowed.
    conn.send(window_update(sid, 10), rst_stream(sid, CANCEL), priority(sid, 0, 10))
    get_ok(conn)


def test_state_even_stream_id_is_protocol_error(conn):
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 2, conn.block_for("/")))
    conn.expect_goaway(PROTOCOL_ERROR)  # §5.1.1


@pytest.mark.parametrize("first", ["answered", "still-open"])
def test_state_decreasing_stream_id_is_protocol_error(conn, first):
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 5, conn.block_for("/" if first ==
                                                                          "answered" else SLOW)))
    if first == "answered":
        conn.response(5)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, conn.block_for("/")))
    conn.expect_goaway(PROTOCOL_ERROR)  # §5.1.1: MUST be greater than all opened before


def test_state_concurrent_streams_over_the_limit_refused(conn):
    limit = conn.server_settings.get(MAX_CONCURRENT_STREAMS)
    assert limit is not None and limit <= 1000, conn.server_settings
    sids = [conn.request("/echo", "POST", end_stream=False) for _ in range(limit + 1)]
    # §5.1.2: a stream error PROTOCOL_ERROR or REFUSED_STREAM, or (§5.4.1) the same as a
    # connection error, which must then leave the extra stream unprocessed.
    f = conn.wait_for(lambda f: f.type in (RST_STREAM, GOAWAY),
                      "an RST_STREAM for stream %d" % sids[-1])
    if f.type == GOAWAY:
        assert f.code() == PROTOCOL_ERROR and f.last_stream() < sids[-1], conn.history()
        conn.expect_eof("after GOAWAY")
        return
    assert f.stream == sids[-1] and f.code() in (REFUSED_STREAM, PROTOCOL_ERROR), conn.history()
    conn.expect_alive()


# === 6.5 SETTINGS

def test_settings_ack_with_payload_is_frame_size_error(conn):
    conn.send(frame(SETTINGS, ACK, 0, struct.pack(">HI", MAX_CONCURRENT_STREAMS, 10)))
    conn.expect_goaway(FRAME_SIZE_ERROR)


def test_settings_on_a_stream_is_protocol_error(conn):
    conn.send(settings((MAX_CONCURRENT_STREAMS, 10), stream=1))
    conn.expect_goaway(PROTOCOL_ERROR)


def test_settings_enable_push_invalid(conn):
    conn.send(settings((ENABLE_PUSH, 2)))
    conn.expect_goaway(PROTOCOL_ERROR)


def test_settings_initial_window_size_too_large(conn):
    conn.send(settings((INITIAL_WINDOW_SIZE, 0x80000000)))
    conn.expect_goaway(FLOW_CONTROL_ERROR)


@pytest.mark.parametrize("size", [16383, 16777216])
def test_settings_max_frame_size_out_of_range(conn, size):
    conn.send(settings((MAX_FRAME_SIZE, size)))
    conn.expect_goaway(PROTOCOL_ERROR)


def test_settings_unknown_ignored_and_acked(conn):
    conn.send(settings((0xFF, 1), (0x7777, 0xFFFFFFFF)))
    conn.wait_for(lambda f: f.type == SETTINGS and f.flags & ACK, "the SETTINGS ACK",
                  fail=lambda f: f.type == GOAWAY)
    get_ok(conn)


def test_settings_server_acks_with_empty_payload(conn):
    conn.send(settings((HEADER_TABLE_SIZE, 4096), (ENABLE_PUSH, 0), (MAX_CONCURRENT_STREAMS, 50),
                       (INITIAL_WINDOW_SIZE, 70000), (MAX_FRAME_SIZE, 20000),
                       (MAX_HEADER_LIST_SIZE, 100000)))
    f = conn.wait_for(lambda f: f.type == SETTINGS, "the SETTINGS ACK",
                      fail=lambda f: f.type == GOAWAY)
    assert f.flags == ACK and f.stream == 0 and f.payload == b"", f
    get_ok(conn)


# === 6.9 flow control

def test_window_update_zero_on_connection(conn):
    conn.send(window_update(0, 0))
    conn.expect_goaway(PROTOCOL_ERROR)


def test_window_update_zero_on_stream(conn):
    sid = conn.request(SLOW)
    conn.send(window_update(sid, 0))
    conn.expect_rst(sid, PROTOCOL_ERROR)


def test_window_overflow_on_connection(conn):
    conn.send(window_update(0, 0x7FFFFFFF))  # 65535 + 2^31-1
    conn.expect_goaway(FLOW_CONTROL_ERROR)


def test_window_overflow_on_stream(conn):
    sid = conn.request(SLOW)
    conn.send(window_update(sid, 0x7FFFFFFF))
    conn.expect_rst(sid, FLOW_CONTROL_ERROR)  # §6.9.1: the stream is terminated


@pytest.mark.xfail(strict=True, reason="known deviation (nghttp2 1.52): a SETTINGS_INITIAL_WINDOW_SIZE "
                   "change that overflows an open stream's window gets RST_STREAM "
                   "FLOW_CONTROL_ERROR on that stream, not the connection error RFC 9113 "
                   "§6.9.2 asks for")
def test_window_overflow_by_initial_window_size_change(conn):
    sid = conn.request(SLOW)
    conn.send(window_update(sid, 0x7FFFFFFF - 65535))  # the stream's window at the maximum
    conn.send(settings((INITIAL_WINDOW_SIZE, 65536)))  # +1
    conn.expect_goaway(FLOW_CONTROL_ERROR)  # §6.9.2


def test_initial_window_size_1_gets_1_byte_data_frames(raw):
    raw.handshake((INITIAL_WINDOW_SIZE, 1))
    sid = raw.request("/")
    body = b""
    window = 1
    updates = 0
    while True:
        f = raw.wait_for(lambda f: f.stream == sid and f.type in (DATA, RST_STREAM),
                         "DATA on stream %d (window %d)" % (sid, window), timeout=5,
                         fail=lambda f: f.type == GOAWAY)
        assert f.type == DATA, raw.history()
        assert len(f.payload) <= window, "DATA of %d bytes, window %d; %s" % (
            len(f.payload), window, raw.history())
        window -= len(f.payload)
        body += f.payload
        if f.flags & END_STREAM:
            break
        if window == 0:
            # Nothing more may come before the window opens.
            late = raw.recv_frame(0.3)
            assert late is None or not (late.type == DATA and late.payload), raw.history()
            raw.send(window_update(sid, 1))
            window += 1
            updates += 1
    assert body == HELLO, body
    assert updates >= len(HELLO) - 1, updates
    sizes = [len(f.payload) for f in raw.received if f.type == DATA]
    assert all(s <= 1 for s in sizes), sizes


# === 5.3 priority

def test_priority_on_idle_stream_accepted(conn):
    conn.send(priority(3, 0, 100), priority(7, 3, 1))
    conn.expect_alive()
    sid = conn.request("/", sid=3)
    conn.response(sid)
    conn.next_sid = 5
    get_ok(conn)


def test_priority_on_open_stream_accepted(conn):
    sid = conn.request("/echo", "POST", end_stream=False)
    conn.send(priority(sid, 0, 256, exclusive=True), frame(DATA, END_STREAM, sid, b"abc"))
    head, body, _ = conn.response(sid)
    assert head[":status"] == "200" and echo_of(body)["body_len"] == 3


def test_priority_in_headers_accepted(conn):
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1,
                    priority_fields(0, 32) + conn.block_for("/")))
    head, body, _ = conn.response(1)
    assert (head[":status"], body) == ("200", HELLO)


def test_priority_headers_depending_on_itself(conn):
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM | PRIORITY_FLAG, 1,
                    priority_fields(1, 16) + conn.block_for("/")))
    conn.expect_rst(1, PROTOCOL_ERROR)  # RFC 7540 §5.3.1: a stream error


def test_priority_frame_depending_on_itself(conn):
    sid = conn.request(SLOW)
    conn.send(priority(sid, sid, 16))
    conn.expect_rst(sid, PROTOCOL_ERROR)  # RFC 7540 §5.3.1: a stream error


# === 6.1 / 6.2 padding

def test_padding_headers_accepted(conn):
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1,
                    padded(conn.block_for("/"), 40)))
    head, body, _ = conn.response(1)
    assert (head[":status"], body) == ("200", HELLO)


def test_padding_headers_with_priority_accepted(conn):
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM | PADDED | PRIORITY_FLAG, 1,
                    padded(priority_fields(0, 16) + conn.block_for("/"), 7)))
    head, body, _ = conn.response(1)
    assert (head[":status"], body) == ("200", HELLO)


def test_padding_data_accepted(conn):
    sid = conn.request("/echo", "POST", extra=[("content-length", "11")], end_stream=False)
    conn.send(frame(DATA, PADDED, sid, padded(b"hello", 100)),
              frame(DATA, PADDED, sid, padded(b"", 10)),  # all padding
              frame(DATA, PADDED | END_STREAM, sid, padded(b" world", 0)))
    head, body, _ = conn.response(sid)
    assert head[":status"] == "200" and echo_of(body)["body_len"] == 11, body


def test_padding_headers_longer_than_payload(conn):
    block = conn.block_for("/")
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1,
                    bytes([len(block) + 1]) + block))  # pad length == payload length
    conn.expect_goaway(PROTOCOL_ERROR)  # §6.2


def test_padding_data_longer_than_payload(conn):
    sid = conn.request("/echo", "POST", end_stream=False)
    conn.send(frame(DATA, PADDED | END_STREAM, sid, bytes([5]) + b"abcd"))
    conn.expect_goaway(PROTOCOL_ERROR)  # §6.1


# === RFC 7541 HPACK (COMPRESSION_ERROR is a connection error, RFC 9113 §4.3)

def test_hpack_table_size_update_above_limit(conn):
    # The server did not raise SETTINGS_HEADER_TABLE_SIZE: 4096 is the limit.
    limit = conn.server_settings.get(HEADER_TABLE_SIZE, 4096)
    block = table_size_update(limit + 1) + literals(conn.fields("/"))
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    conn.expect_goaway(COMPRESSION_ERROR)


@pytest.mark.parametrize("size", [0, 4096])
def test_hpack_table_size_update_at_block_start_accepted(conn, size):
    block = table_size_update(size) + literals(conn.fields("/"))
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    head, body, _ = conn.response(1)
    assert (head[":status"], body) == ("200", HELLO)


def test_hpack_table_size_update_after_a_field(conn):
    block = literals(conn.fields("/")) + table_size_update(0)  # RFC 7541 §4.2
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    conn.expect_goaway(COMPRESSION_ERROR)


@pytest.mark.parametrize("index", [0, 70])
def test_hpack_invalid_index(conn, index):
    # 0 is never valid (§6.1); 70 is past the static table (61) and the empty dynamic one.
    block = literals(conn.fields("/")) + hint(index, 7, 0x80)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    conn.expect_goaway(COMPRESSION_ERROR)


def test_hpack_invalid_name_index_in_literal(conn):
    block = literals(conn.fields("/")) + hint(70, 4, 0x00) + hstr("v")
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    conn.expect_goaway(COMPRESSION_ERROR)


@pytest.mark.parametrize("huffman", [True, False], ids=["huffman", "plain"])
def test_hpack_string_encodings(conn, huffman):
    value = "Huffman-or-not value 0123456789 ~!"
    block = literals(conn.fields("/echo") + [("x-enc", value)], huffman=huffman)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    head, body, _ = conn.response(1)
    assert head[":status"] == "200"
    e = echo_of(body)
    assert e["target"] == "/echo" and e["h"]["x-enc"] == value and e["h"]["host"] == "conf.test"


@pytest.mark.parametrize("encoded", [b"\xff\xff\xff\xff", b"\x1f\xff", b"\x18"],
                         ids=["eos-symbol", "padding-over-7-bits", "padding-not-eos-prefix"])
def test_hpack_invalid_huffman(conn, encoded):
    # RFC 7541 §5.2: EOS in the string, padding longer than 7 bits or not the EOS prefix.
    block = literals(conn.fields("/")) + b"\x00" + hstr("x-huff") + \
        hint(len(encoded), 7, 0x80) + encoded
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
    conn.expect_goaway(COMPRESSION_ERROR)


def test_hpack_dynamic_table_across_blocks_and_eviction(conn):
    # Literal with incremental indexing: the entry becomes index 62 for the next blocks.
    first = literals(conn.fields("/echo")) + b"\x40" + hstr("x-dyn") + hstr("indexed-value")
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, first))
    head, body, _ = conn.response(1)
    assert echo_of(body)["h"].get("x-dyn") == "indexed-value"
    second = literals(conn.fields("/echo")) + hint(62, 7, 0x80)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, second))
    head, body, _ = conn.response(3)
    assert echo_of(body)["h"].get("x-dyn") == "indexed-value"
    # A size update to 0 evicts it: index 62 no longer exists.
    third = table_size_update(0) + literals(conn.fields("/echo")) + hint(62, 7, 0x80)
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 5, third))
    conn.expect_goaway(COMPRESSION_ERROR)


def test_hpack_encoder_blocks_with_huffman_and_indexing(conn):
    # python3-h2's hpack encoder: Huffman and the dynamic table across 5 requests.
    for i in range(5):
        head, body = get_ok(conn, "/echo", extra=[("x-round", "same value")])
        assert echo_of(body)["h"]["x-round"] == "same value"


# === 8 HTTP semantics: malformed requests are stream errors PROTOCOL_ERROR

def _malformed(scheme):
    base = [(":method", "GET"), (":scheme", scheme), (":authority", "conf.test"), (":path", "/")]

    def without(name):
        return [f for f in base if f[0] != name]
    return {
        "missing-method": without(":method"),
        "missing-scheme": without(":scheme"),
        "missing-path": without(":path"),
        "empty-path": without(":path") + [(":path", "")],
        "duplicate-method": base + [(":method", "GET")],
        "duplicate-path": base + [(":path", "/")],
        "unknown-pseudo": base + [(":foo", "bar")],
        "response-pseudo": base + [(":status", "200")],
        "pseudo-after-regular": base[:2] + [("x-a", "1")] + base[2:],
        "uppercase-name": base + [("X-Upper", "1")],
        "name-with-space": base + [("x bad", "1")],
        "connection": base + [("connection", "keep-alive")],
        "keep-alive": base + [("keep-alive", "timeout=5")],
        "proxy-connection": base + [("proxy-connection", "keep-alive")],
        "transfer-encoding": base + [("transfer-encoding", "chunked")],
        "upgrade": base + [("upgrade", "websocket")],
        "te-gzip": base + [("te", "gzip")],
        "value-nul": base + [("x-bad", "a\x00b")],
        "value-crlf": base + [("x-bad", "a\r\nb")],
        "value-leading-space": base + [("x-bad", " a")],
        "content-length-without-body": base + [("content-length", "1")],
    }


MALFORMED = sorted(_malformed("http"))


@pytest.mark.parametrize("case", MALFORMED)
def test_http_malformed_request_is_stream_error(conn, case):
    fields = _malformed(conn.scheme)[case]
    conn.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, literals(fields)))
    conn.expect_rst(1, PROTOCOL_ERROR)
    conn.next_sid = 3
    get_ok(conn)  # the connection lives on


@pytest.mark.parametrize("cl,body", [(10, b"hello"), (2, b"hello")], ids=["less", "more"])
def test_http_content_length_mismatch(conn, cl, body):
    sid = conn.request("/echo", "POST", extra=[("content-length", str(cl))], end_stream=False)
    conn.send(frame(DATA, END_STREAM, sid, body))
    conn.expect_rst(sid, PROTOCOL_ERROR)  # §8.1.1


def test_http_trailers_with_pseudo_field(conn):
    sid = conn.request("/echo", "POST", end_stream=False)
    conn.send(frame(DATA, 0, sid, b"abc"),
              frame(HEADERS, END_HEADERS | END_STREAM, sid, literals([(":path", "/x")])))
    conn.expect_rst(sid, PROTOCOL_ERROR)  # §8.1: trailers MUST NOT carry pseudo-fields


def test_http_second_headers_without_end_stream(conn):
    sid = conn.request("/echo", "POST", end_stream=False)
    conn.send(frame(HEADERS, END_HEADERS, sid, literals([("x-trailer", "1")])))
    conn.expect_rst(sid, PROTOCOL_ERROR)  # §8.1: a HEADERS after the head must end the stream


def test_http_te_trailers_accepted(conn):
    head, body = get_ok(conn, extra=[("te", "trailers")])
    assert body == HELLO


def test_http_trailers_accepted(conn):
    sid = conn.request("/echo", "POST", end_stream=False)
    conn.send(frame(DATA, 0, sid, b"body with trailers"),
              frame(HEADERS, END_HEADERS | END_STREAM, sid, literals([("x-checksum", "abc")])))
    head, body, _ = conn.response(sid)
    assert head[":status"] == "200" and echo_of(body)["body_len"] == 18, body


@pytest.mark.parametrize("with_cl", [True, False], ids=["content-length", "no-content-length"])
def test_http_request_with_body_answered(conn, with_cl):
    data = os.urandom(40000)
    extra = [("content-length", str(len(data)))] if with_cl else []
    sid = conn.request("/echo", "POST", extra=extra, end_stream=False)
    chunks = [data[i:i + 16384] for i in range(0, len(data), 16384)]
    for i, chunk in enumerate(chunks):
        conn.send(frame(DATA, END_STREAM if i == len(chunks) - 1 else 0, sid, chunk))
    head, body, _ = conn.response(sid)
    assert head[":status"] == "200"
    e = echo_of(body)
    assert (e["method"], e["body_len"]) == ("POST", len(data)), e


def test_http_response_is_well_formed(conn):
    head, body = get_ok(conn)
    assert body == HELLO
    assert all(k == k.lower() for k in head), head
    for name in ("connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"):
        assert name not in head, head  # §8.2.2: no connection-specific fields


# === 6.7 PING, 6.8 GOAWAY

def test_ping_gets_ack_with_same_payload(conn):
    conn.send(ping(b"\x01\x02\x03\x04\x05\x06\x07\x08"))
    f = conn.wait_for(lambda f: f.type == PING, "the PING ACK", fail=lambda f: f.type == GOAWAY)
    assert f.flags == ACK and f.stream == 0 and f.payload == b"\x01\x02\x03\x04\x05\x06\x07\x08"


def test_ping_ack_from_client_ignored(conn):
    conn.send(ping(b"ackack!!", flags=ACK), ping(b"realping"))
    f = conn.wait_for(lambda f: f.type == PING, "the PING ACK", fail=lambda f: f.type == GOAWAY)
    assert f.flags == ACK and f.payload == b"realping", conn.history()
    late = conn.recv_frame(0.5)
    assert late is None or late.type != PING, conn.history()


def test_ping_on_a_stream_is_protocol_error(conn):
    conn.send(ping(stream=1))
    conn.expect_goaway(PROTOCOL_ERROR)


def test_goaway_from_client_accepted(conn):
    sid = conn.request("/")
    conn.send(goaway(0, NO_ERROR))
    head, body, _ = conn.response(sid)  # the client's stream is still answered
    assert (head[":status"], body) == ("200", HELLO)
    for f in conn.received:
        assert f.type != GOAWAY or f.code() == NO_ERROR, conn.history()


def test_goaway_on_a_stream_is_protocol_error(conn):
    conn.send(goaway(0, NO_ERROR, stream=1))
    conn.expect_goaway(PROTOCOL_ERROR)


# === frames on stream 0 that need a stream, and vice versa

@pytest.mark.parametrize("ftype", ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "CONTINUATION"])
def test_stream_frames_on_stream_0_are_protocol_error(conn, ftype):
    conn.send({"DATA": frame(DATA, END_STREAM, 0, b"x"),
               "HEADERS": frame(HEADERS, END_HEADERS | END_STREAM, 0, conn.block_for("/")),
               "PRIORITY": priority(0, 1, 16),
               "RST_STREAM": rst_stream(0, CANCEL),
               "CONTINUATION": frame(CONTINUATION, END_HEADERS, 0, b"")}[ftype])
    conn.expect_goaway(PROTOCOL_ERROR)


# === 4.1 / 5.5 unknown frame types and flags

def test_unknown_frame_types_ignored(conn):
    conn.send(frame(0xFA, 0xFF, 0, b"unknown on 0"))
    sid = conn.request("/echo", "POST", end_stream=False)
    conn.send(frame(0x20, 0x01, sid, b"unknown on the stream"),
              frame(DATA, END_STREAM, sid, b"abc"))
    head, body, _ = conn.response(sid)
    assert head[":status"] == "200" and echo_of(body)["body_len"] == 3


def test_unknown_flags_ignored(conn):
    conn.send(ping(b"flagsflg", flags=0xFE))  # every flag but ACK
    f = conn.wait_for(lambda f: f.type == PING, "the PING ACK", fail=lambda f: f.type == GOAWAY)
    assert f.flags == ACK and f.payload == b"flagsflg"
    conn.send(frame(HEADERS, END_HEADERS | 0x02 | 0x10 | 0x40 | 0x80, 1,
                    conn.block_for("/echo", "POST")),
              frame(DATA, END_STREAM | 0x02 | 0x04 | 0x10 | 0x20 | 0x40 | 0x80, 1, b"xy"),
              settings((MAX_CONCURRENT_STREAMS, 100), flags=0xFE))
    head, body, _ = conn.response(1)
    assert head[":status"] == "200" and echo_of(body)["body_len"] == 2, body


def test_unknown_frame_inside_a_header_block_is_protocol_error(conn):
    block = conn.block_for("/")
    conn.send(frame(HEADERS, END_STREAM, 1, block[:5]), frame(0xFA, 0, 1, b"x"),
              frame(CONTINUATION, END_HEADERS, 1, block[5:]))
    conn.expect_goaway(PROTOCOL_ERROR)  # §5.5


# === 6.10 CONTINUATION

def test_continuation_split_header_block_accepted(conn):
    block = conn.block_for("/", extra=[("x-long", "v" * 300)])
    conn.send(frame(HEADERS, END_STREAM, 1, block[:10]),
              frame(CONTINUATION, 0, 1, block[10:20]),
              frame(CONTINUATION, 0, 1, b""),
              frame(CONTINUATION, END_HEADERS, 1, block[20:]))
    head, body, _ = conn.response(1)
    assert (head[":status"], body) == ("200", HELLO)


@pytest.mark.parametrize("other", ["DATA", "PING", "PRIORITY", "HEADERS-other-stream",
                                   "CONTINUATION-other-stream"])
def test_continuation_interleaved_is_protocol_error(conn, other):
    block = conn.block_for("/")
    conn.send(frame(HEADERS, END_STREAM, 1, block[:5]))
    conn.send({"DATA": frame(DATA, 0, 1, b"x"),
               "PING": ping(),
               "PRIORITY": priority(1, 0, 16),
               "HEADERS-other-stream": frame(HEADERS, END_HEADERS | END_STREAM, 3,
                                             literals(conn.fields("/"))),
               "CONTINUATION-other-stream": frame(CONTINUATION, END_HEADERS, 3, block[5:])}[other])
    conn.send(frame(CONTINUATION, END_HEADERS, 1, block[5:]))
    conn.expect_goaway(PROTOCOL_ERROR)  # §6.10


def test_continuation_after_end_headers_is_protocol_error(conn):
    sid = conn.request(SLOW)
    conn.send(frame(CONTINUATION, END_HEADERS, sid, literals([("x-more", "1")])))
    conn.expect_goaway(PROTOCOL_ERROR)  # §6.10
