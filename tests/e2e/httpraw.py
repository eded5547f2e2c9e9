"""Raw HTTP/1.1 client for exchanges that curl would normalise away.

Everything has a timeout; a response is parsed with its real framing (Content-Length, chunked,
close-delimited, no body for HEAD/1xx/204/304) so tests see exactly what went over the wire.
"""

import socket
import ssl
import time

DEFAULT_TIMEOUT = 5.0


class Response:
    def __init__(self, version, status, reason, headers):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value) as received
        self.body = b""
        self.framing = None  # "length", "chunked", "close" or "none"
        self.complete = False  # body ended where its framing said it would

    def header(self, name, default=None):
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def connection_tokens(self):
        toks = set()
        for v in self.header_all("connection"):
            toks.update(t.strip().lower() for t in v.split(",") if t.strip())
        return toks

    @property
    def text(self):
        return self.body.decode("latin-1")

    def __repr__(self):
        return "<Response %s %d %s, %d body bytes, framing=%s, complete=%s>" % (
            self.version, self.status, self.reason, len(self.body), self.framing, self.complete)


class ConnectionClosed(Exception):
    """The peer closed before a complete response head arrived."""


def client_tls_context():
    """TLS without certificate checks (the tests check certificates with curl/openssl)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Conn:
    """One client connection with a read buffer shared by successive responses.
    tls=True speaks HTTPS (server_name: the SNI to send)."""

    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, tls=False,
                 server_name=None):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            self.sock = client_tls_context().wrap_socket(self.sock, server_hostname=server_name)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Reads more bytes into buf; returns False on EOF (or reset)."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out waiting for response bytes")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_line(self, deadline):
        while b"\r\n" not in self.buf:
            if not self._fill(deadline):
                raise ConnectionClosed("closed with %r pending" % self.buf[:200])
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n, deadline, out):
        while len(self.buf) < n:
            if not self._fill(deadline):
                out += self.buf
                self.buf = b""
                return False
        out += self.buf[:n]
        self.buf = self.buf[n:]
        return True

    def read_head(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        status_line = self._read_line(deadline).decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise ValueError("bad status line %r" % status_line)
        headers = []
        while True:
            line = self._read_line(deadline)
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers.append((name, value.strip()))
        return Response(parts[0], int(parts[1]), parts[2] if len(parts) > 2 else "", headers)

    def read_response(self, method="GET", timeout=None, interim=None):
        """Reads one final response; 1xx responses are appended to `interim` if given."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            resp = self.read_head(deadline - time.monotonic())
            if 100 <= resp.status < 200 and resp.status != 101:
                if interim is not None:
                    interim.append(resp)
                continue
            break
        self._read_body(resp, method, deadline)
        return resp

    def _read_body(self, resp, method, deadline):
        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            resp.framing, resp.complete = "none", True
            return
        te = ",".join(resp.header_all("transfer-encoding")).lower()
        cl = resp.header("content-length")
        body = bytearray()
        if "chunked" in te:
            resp.framing = "chunked"
            while True:
                size_line = self._read_line(deadline).split(b";")[0].strip()
                size = int(size_line, 16)
                if size == 0:
                    while self._read_line(deadline):  # trailers
                        pass
                    resp.complete = True
                    break
                if not self._read_exact(size, deadline, body):
                    break
                if self._read_line(deadline) != b"":
                    raise ValueError("chunk not followed by CRLF")
        elif cl is not None:
            resp.framing = "length"
            resp.complete = self._read_exact(int(cl), deadline, body)
        else:
            resp.framing = "close"
            while self._fill(deadline):
                pass
            body += self.buf
            self.buf = b""
            resp.complete = True
        resp.body = bytes(body)

    def read_until_close(self, timeout=None):
        """Everything the peer sends until it closes (raises socket.timeout if it does not)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        data, self.buf = self.buf, b""
        return data

    def is_closed(self, timeout=2.0):
        """True if the peer closes (EOF or reset) within timeout with nothing more to say."""
        try:
            extra = self.read_until_close(timeout)
        except socket.timeout:
            return False
        return extra == b""


def exchange(port, raw, method="GET", timeout=DEFAULT_TIMEOUT):
    """Sends raw bytes on a new connection; returns (response, closed_afterwards)."""
    with Conn(port, timeout=timeout) as c:
        c.send(raw)
        resp = c.read_response(method=method)
        return resp, c.is_closed(2.0)


def request(port, method="GET", target="/", headers=None, body=b"", host="test.local",
            version="HTTP/1.1", timeout=DEFAULT_TIMEOUT):
    """One well-formed request on a new connection (Connection: close)."""
    raw = build_request(method, target, headers, body, host, version, close=True)
    with Conn(port, timeout=timeout) as c:
        c.send(raw)
        return c.read_response(method=method)


def build_request(method="GET", target="/", headers=None, body=b"", host="test.local",
                  version="HTTP/1.1", close=False):
    lines = ["%s %s %s" % (method, target, version)]
    if host is not None:
        lines.append("Host: " + host)
    for n, v in (headers or []):
        lines.append("%s: %s" % (n, v))
    if body and not any(n.lower() in ("content-length", "transfer-encoding")
                        for n, _ in (headers or [])):
        lines.append("Content-Length: %d" % len(body))
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body, sizes=(1, 100, 4096, 65536)):
    """Encodes body in chunked framing with uneven chunk sizes."""
    out, i, k = [], 0, 0
    while i < len(body):
        n = sizes[k % len(sizes)]
        out.append(b"%x\r\n" % len(body[i:i + n]) + body[i:i + n] + b"\r\n")
        i += n
        k += 1
    out.append(b"0\r\n\r\n")
    return b"".join(out)


def fnv1a64(data):
    """The backend's body_hash (FNV-1a 64, lowercase hex)."""
    h = 0xcbf29ce484222325
    # Pure Python: about 1 s for 5 MB, acceptable for the few large-body tests.
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def pattern(n, offset=0):
    """Bytes the backend's /bytes/N, /chunked/N, /close/N and /abort/N produce."""
    period = bytes(((i * 31 + 7) & 0xFF) for i in range(256))
    reps = (offset % 256 + n) // 256 + 1
    s = offset % 256
    return (period * reps)[s:s + n]


def fetch_bytes_concurrently(port, n, count, threads, timeout=20):
    """GET /bytes/N `count` times over `threads` parallel connections; returns the list of
    (status, body_intact) with the body checked against the test backend's pattern."""
    import concurrent.futures
    import hashlib
    want = hashlib.sha256(pattern(n)).digest()

    def fetch(_):
        r = request(port, target="/bytes/%d" % n, timeout=timeout)
        return r.status, hashlib.sha256(r.body).digest() == want

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fetch, range(count)))
