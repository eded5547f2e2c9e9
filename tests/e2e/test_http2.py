"""HTTP/2 from clients: h2c with prior knowledge on a plaintext listener (HTTP/1.1 still
served on the same port), requests mapped to HTTP/1.1 upstreams both ways, bodies with
and without Content-Length, RFC 9113 §8 refusals, resets, h2load."""

import hashlib
import json
import socket
import subprocess

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

import httpraw


def curl_h2(port, path, *extra, host="127.0.0.1"):
    args = ["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10", "-o", "-",
            "-w", "\n%{http_version} %{http_code}"] + list(extra)
    args.append("http://%s:%d%s" % (host, port, path))
    r = subprocess.run(args, capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    body, _, tail = r.stdout.rpartition(b"\n")
    version, code = tail.decode().split()
    return version, int(code), body


class H2Client:
    """A raw HTTP/2 client (python3-h2) over a plain socket: frames exactly as written."""

    def __init__(self, port, validate=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=validate,
                                        normalize_outbound_headers=validate)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.flush()
        self.responses = {}
        self.bodies = {}
        self.trailers = {}
        self.resets = {}
        self.ended = set()
        self.goaway = None

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", headers=(), body=None, end=True, authority="h2.test"):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", authority),
                (":path", path)] + list(headers)
        self.conn.send_headers(sid, hdrs, end_stream=body is None and end)
        if body is not None:
            self.send_body(sid, body, end)
        self.flush()
        return sid

    def send_body(self, sid, body, end=True):
        # Respects the flow-control window; reads (and acknowledges) while waiting.
        off = 0
        while off < len(body):
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.flush()
                self.read_some()
                continue
            chunk = body[off:off + window]
            self.conn.send_data(sid, chunk)
            off += len(chunk)
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def read_some(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                self.responses[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                self.bodies.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                self.trailers[ev.stream_id] = dict(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                self.ended.add(ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                self.resets[ev.stream_id] = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev.error_code
        self.flush()

    def wait(self, sid):
        while sid not in self.ended and sid not in self.resets:
            self.read_some()
        return self.responses.get(sid), bytes(self.bodies.get(sid, b""))

    def close(self):
        self.sock.close()


def test_prior_knowledge_and_http11_on_the_same_port(stack):
    version, code, body = curl_h2(stack.port, "/")
    assert (version, code, body) == ("2", 200, b"hello from a\n")
    r = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_version}",
                        "http://127.0.0.1:%d/" % stack.port], capture_output=True, timeout=10)
    assert r.stdout == b"hello from a\n\n1.1", r.stdout


def test_routing_and_header_policy_apply_to_h2(stack, backends):
    version, code, body = curl_h2(stack.port, "/api/echo", host="api.example.com",
                                  *["--resolve", "api.example.com:%d:127.0.0.1" % stack.port])
    assert code == 200
    echo = json.loads(body)
    headers = {k.lower(): v for k, v in echo["headers"]}
    assert headers["host"] == "internal.app"  # the route's host_rewrite
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    # The upstream got HTTP/1.1 without any HTTP/2 pseudo-field or TE.
    assert not any(k.startswith(":") for k in headers)
    # Routes match on :authority as on Host: strict.example routes, another name is a 404.
    strict = stack.ports["strict"]
    _, code, _ = curl_h2(strict, "/x/y", "-H", "Host: strict.example")
    assert code == 200
    _, code, body = curl_h2(strict, "/x/y", "-H", "Host: nowhere.example")
    assert (code, body) == (404, b"zproxy: no route\n")


def test_response_bodies_map_back(stack):
    # Content-Length, chunked (decoded into DATA) and close-delimited upstream bodies.
    for path, n in (("/bytes/100000", 100000), ("/chunked/70000", 70000), ("/close/50000", 50000)):
        version, code, body = curl_h2(stack.port, path)
        assert (version, code) == ("2", 200), path
        assert body == httpraw.pattern(n), path


def test_request_bodies_with_and_without_content_length(stack):
    c = H2Client(stack.port)
    try:
        body = bytes(range(256)) * 1200  # 300 KiB: more than the initial window
        a = c.request("/echo", "POST", [("content-length", str(len(body)))], body)
        b = c.request("/echo", "POST", [], body)  # goes upstream chunked
        for sid in (a, b):
            resp, data = c.wait(sid)
            assert resp[":status"] == "200", resp
            echo = json.loads(data)
            assert echo["body_len"] == len(body), (sid, echo)
    finally:
        c.close()


def test_many_streams_on_one_connection(stack):
    c = H2Client(stack.port)
    try:
        sids = [c.request("/bytes/%d" % (1000 + i)) for i in range(50)]
        for i, sid in enumerate(sids):
            resp, data = c.wait(sid)
            assert resp[":status"] == "200"
            assert data == httpraw.pattern(1000 + i)
    finally:
        c.close()


def test_no_route_is_404_and_connection_lives_on(stack):
    c = H2Client(stack.ports["strict"])
    try:
        sid = c.request("/nope", authority="other.example")
        resp, data = c.wait(sid)
        assert resp[":status"] == "404" and data == b"zproxy: no route\n"
        sid = c.request("/x/y", authority="strict.example")
        resp, data = c.wait(sid)
        assert resp[":status"] == "200"
    finally:
        c.close()


MALFORMED = {
    "connection-specific": [("connection", "keep-alive")],
    "transfer-encoding": [("transfer-encoding", "chunked")],
    "te-not-trailers": [("te", "gzip")],
    "uppercase-name": [("X-Upper", "1")],
    "bad-value": [("x-bad", "a\r\nb")],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_are_stream_errors_and_never_forwarded(stack, backends, case):
    log = backends["a"].log
    mark = log.mark()
    c = H2Client(stack.port, validate=False)
    try:
        sid = c.request("/malformed-%s" % case, headers=MALFORMED[case])
        c.wait(sid)
        assert c.resets.get(sid) == 1, (case, c.resets, c.responses)  # PROTOCOL_ERROR
        # The connection lives on.
        sid = c.request("/")
        resp, data = c.wait(sid)
        assert resp[":status"] == "200"
    finally:
        c.close()
    assert not any("malformed" in t for _, t in log.reqs_since(mark))


def test_content_length_disagreeing_with_data_never_completes_upstream(stack):
    c = H2Client(stack.port, validate=False)
    try:
        sid = c.request("/echo?cl-mismatch", "POST", [("content-length", "100")], b"x" * 10)
        c.wait(sid)
        # Reset, never answered: the upstream (which echoes complete requests) never had
        # one to answer.
        assert sid in c.resets and sid not in c.responses, (c.resets, c.responses)
    finally:
        c.close()


def test_client_reset_cancels_the_upstream_request(stack):
    c = H2Client(stack.port)
    try:
        sid = c.request("/slow/3000")
        c.conn.reset_stream(sid)
        c.flush()
        sid2 = c.request("/")
        resp, _ = c.wait(sid2)
        assert resp[":status"] == "200"
    finally:
        c.close()


def test_h2load_many_clients_and_streams(stack):
    r = subprocess.run(["h2load", "-n", "2000", "-c", "10", "-m", "10",
                        "http://127.0.0.1:%d/" % stack.port],
                       capture_output=True, timeout=60, text=True)
    assert r.returncode == 0, r.stderr
    assert "2000 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout
    assert "status codes: 2000 2xx" in r.stdout, r.stdout


# --- HTTP/2 upstreams (cluster protocol: http2)

import os
import sys
import time

from conftest import catch_all, cluster, listener
from procs import base_config


@pytest.fixture(scope="module")
def h2_upstream(tmp_path_factory):
    d = tmp_path_factory.mktemp("h2up")
    port_file = str(d / "port")
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__),
                                                          "h2_backend.py"), port_file])
    deadline = time.monotonic() + 10
    while not os.path.exists(port_file):
        assert time.monotonic() < deadline and proc.poll() is None, "h2 backend did not start"
        time.sleep(0.02)
    port = int(open(port_file).read())

    class Up:
        addr = "127.0.0.1:%d" % port
        log = port_file + ".log"

        def conns(self):
            try:
                return sum(1 for l in open(self.log) if l.startswith("conn"))
            except FileNotFoundError:
                return 0
    yield Up()
    proc.kill()
    proc.wait()


@pytest.fixture
def h2_proxy(make_proxy, h2_upstream):
    return make_proxy(base_config([listener("web", catch_all("up"))],
                                  [cluster("up", h2_upstream.addr, protocol="http2")]))


def test_h1_and_h2_clients_reach_an_http2_upstream(h2_proxy):
    r = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_version}",
                        "http://127.0.0.1:%d/" % h2_proxy.port], capture_output=True, timeout=10)
    assert r.stdout == b"hello from h2\n\n1.1", (r.stdout, r.stderr)
    version, code, body = curl_h2(h2_proxy.port, "/bytes/300000")
    assert (version, code) == ("2", 200) and body == httpraw.pattern(300000)
    # Unknown length: chunked for the HTTP/1.1 client, DATA for the HTTP/2 one.
    r = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null",
                        "http://127.0.0.1:%d/stream/50000" % h2_proxy.port],
                       capture_output=True, timeout=10)
    assert b"chunked" in r.stdout.lower(), r.stdout
    r = subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/stream/50000" % h2_proxy.port],
                       capture_output=True, timeout=10)
    assert r.stdout == httpraw.pattern(50000)
    version, code, body = curl_h2(h2_proxy.port, "/stream/50000")
    assert body == httpraw.pattern(50000)


def test_request_bodies_reach_an_http2_upstream(h2_proxy):
    body = os.urandom(500000)
    digest = hashlib.sha256(body).hexdigest()
    # HTTP/1.1 client, Content-Length and chunked.
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        r = subprocess.run(["curl", "-sS", "--data-binary", "@-", "-H",
                            "Content-Type: application/octet-stream"] + extra +
                           ["http://127.0.0.1:%d/echo" % h2_proxy.port],
                           input=body, capture_output=True, timeout=20)
        echo = json.loads(r.stdout)
        assert (echo["body_len"], echo["body_sha256"]) == (len(body), digest), extra
        assert echo["method"] == "POST"
    # HTTP/2 client, with and without Content-Length.
    c = H2Client(h2_proxy.port)
    try:
        a = c.request("/echo", "POST", [("content-length", str(len(body)))], body)
        b = c.request("/echo", "POST", [], body)
        for sid in (a, b):
            resp, data = c.wait(sid)
            echo = json.loads(data)
            assert (echo["body_len"], echo["body_sha256"]) == (len(body), digest)
    finally:
        c.close()


def test_trailers_reach_h2_and_chunked_h1_clients(h2_proxy):
    c = H2Client(h2_proxy.port)
    try:
        sid = c.request("/trailers")
        resp, data = c.wait(sid)
        assert resp[":status"] == "200" and data == b"ok"
        assert c.trailers[sid] == {"x-checksum": "abc", "grpc-status": "0"}, c.trailers
    finally:
        c.close()
    # An HTTP/1.1 client gets them in the chunked trailer section.
    with httpraw.Conn(h2_proxy.port) as conn:
        conn.send(b"GET /trailers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = conn.read_until_close(timeout=5)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), raw
    assert body == b"2\r\nok\r\n0\r\nx-checksum: abc\r\ngrpc-status: 0\r\n\r\n", raw


def test_one_connection_carries_many_streams(h2_proxy, h2_upstream):
    before = h2_upstream.conns()
    c = H2Client(h2_proxy.port)
    try:
        sids = [c.request("/bytes/%d" % (100 + i)) for i in range(40)]
        for i, sid in enumerate(sids):
            resp, data = c.wait(sid)
            assert resp[":status"] == "200" and data == httpraw.pattern(100 + i)
    finally:
        c.close()
    r = subprocess.run(["h2load", "-n", "1000", "-c", "4", "-m", "10",
                        "http://127.0.0.1:%d/bytes/100" % h2_proxy.port],
                       capture_output=True, timeout=60, text=True)
    assert "1000 succeeded, 0 failed, 0 errored" in r.stdout, r.stdout
    # 40 + 40 concurrent streams at most per worker; the upstream allows 50 per connection.
    assert h2_upstream.conns() - before <= 3, h2_upstream.conns() - before


def test_upstream_reset_is_a_502_and_other_streams_live(h2_proxy):
    c = H2Client(h2_proxy.port)
    try:
        slow = c.request("/slow/300")
        bad = c.request("/reset")
        resp, data = c.wait(bad)
        assert resp[":status"] == "502", resp
        resp, data = c.wait(slow)
        assert resp[":status"] == "200" and data == b"slow"
    finally:
        c.close()
    _, code, _ = curl_h2(h2_proxy.port, "/reset")
    assert code == 502


def test_client_cancel_resets_the_upstream_stream(h2_proxy, h2_upstream):
    c = H2Client(h2_proxy.port)
    try:
        sid = c.request("/slow/2000")
        time.sleep(0.2)
        c.conn.reset_stream(sid)
        c.flush()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if any(l.startswith("reset") for l in open(h2_upstream.log)):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the upstream never saw the stream reset")
        sid2 = c.request("/")
        resp, _ = c.wait(sid2)
        assert resp[":status"] == "200"
    finally:
        c.close()


@pytest.fixture(scope="module")
def nghttpd_tls(tmp_path_factory):
    """nghttpd over TLS (h2 by ALPN only), serving files from a directory."""
    from tlscerts import Certs
    from procs import free_port
    d = tmp_path_factory.mktemp("nghttpd")
    certs = Certs(str(d))
    docroot = d / "www"
    docroot.mkdir()
    (docroot / "big.bin").write_bytes(httpraw.pattern(200000))
    (docroot / "index.html").write_bytes(b"hello from nghttpd\n")
    port = free_port()
    proc = subprocess.Popen(["nghttpd", "-d", str(docroot), "--address", "127.0.0.1", str(port),
                             certs.upstream["key"], certs.upstream["cert"]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "nghttpd did not start"
            time.sleep(0.05)

    class N:
        addr = "127.0.0.1:%d" % port
        ca = certs.path("ca.pem")
    yield N()
    proc.kill()
    proc.wait()


def test_h2_upstream_over_tls_by_alpn(make_proxy, nghttpd_tls):
    tls = {"ca": nghttpd_tls.ca, "sni": "upstream.test"}
    z = make_proxy(base_config([listener("web", catch_all("up"))],
                               [cluster("up", nghttpd_tls.addr, protocol="http2", tls=tls)]))
    r = subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/index.html" % z.port],
                       capture_output=True, timeout=10)
    assert r.stdout == b"hello from nghttpd\n", r.stderr
    version, code, body = curl_h2(z.port, "/big.bin")
    assert (version, code, body) == ("2", 200, httpraw.pattern(200000))


def test_idle_pooled_h2_connection_without_ping_ack_is_replaced(make_proxy, h2_upstream):
    import signal
    z = make_proxy(base_config([listener("web", catch_all("up"))],
                               [cluster("up", h2_upstream.addr, protocol="http2",
                                        idle_timeout_ms=4000, read_timeout_ms=1000)]))
    assert curl_h2(z.port, "/")[1] == 200
    before = h2_upstream.conns()
    pid = int(subprocess.run(["pgrep", "-f", "h2_backend.py"], capture_output=True,
                             text=True).stdout.split()[0])
    os.kill(pid, signal.SIGSTOP)  # alive for TCP, deaf to PING
    try:
        # PING after 2 s idle, no ACK within read_timeout_ms: closed at ~3 s, before the
        # 4 s idle timeout would have.
        time.sleep(3.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert curl_h2(z.port, "/")[1] == 200
    assert h2_upstream.conns() == before + 1, "the dead pooled connection was reused"


def test_h2c_upgrade_is_served_as_http11(stack):
    # curl --http2 on http:// asks for Upgrade: h2c; zproxy answers in HTTP/1.1 and the
    # upstream never sees the Upgrade.
    r = subprocess.run(["curl", "-sS", "--http2", "-o", "-", "-w", "\n%{http_version}",
                        "http://127.0.0.1:%d/echo" % stack.port], capture_output=True, timeout=10)
    body, _, version = r.stdout.rpartition(b"\n")
    assert version == b"1.1", r.stdout
    headers = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert "upgrade" not in headers and "http2-settings" not in headers, headers


def test_connect_over_h2_tunnels_to_an_allowed_target(make_proxy, backends):
    """RFC 9113 §8.5: CONNECT on a stream; its DATA are the tunnel's bytes both ways."""
    a = backends["a"]
    lst = listener("web", catch_all("a"))
    lst["connect"] = {"allow": ["127.0.0.1:%d" % a.port]}
    z = make_proxy(base_config([lst], [cluster("a", a.addr)]))
    c = H2Client(z.port, validate=False)  # (python3-h2 wants a :path even for CONNECT)
    try:
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", a.addr)])
        c.flush()
        while sid not in c.responses and sid not in c.resets:
            c.read_some()
        assert c.responses[sid][":status"] == "200", c.responses
        # An HTTP/1.1 exchange with the backend, through the tunnel.
        c.conn.send_data(sid, b"GET /bytes/5000 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                         end_stream=True)
        c.flush()
        while sid not in c.ended and sid not in c.resets:
            c.read_some()
        raw = bytes(c.bodies[sid])
        assert raw.startswith(b"HTTP/1.1 200"), raw[:100]
        assert raw.endswith(httpraw.pattern(5000))
        # Not allowed: 403 on that stream, the connection lives on.
        sid2 = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid2, [(":method", "CONNECT"), (":authority", "127.0.0.1:1")],
                            end_stream=False)
        c.flush()
        resp, body = c.wait(sid2)
        assert resp[":status"] == "403" and b"not allowed" in body
    finally:
        c.close()


def test_http11_upstream_trailers_reach_h2_clients(make_proxy):
    """A chunked HTTP/1.1 response with a trailer section: an HTTP/2 client gets the
    trailers as a HEADERS frame after the data (connection-specific names dropped)."""
    from scripted_upstream import ScriptedUpstream

    def answer(conn, index, method, target, body):
        return (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: abc\r\nGrpc-Status: 0\r\n"
                b"Connection: close\r\n\r\n")
    up = ScriptedUpstream(answer)
    try:
        z = make_proxy(base_config([listener("web", catch_all("up"))],
                                   [cluster("up", "127.0.0.1:%d" % up.port)]))
        c = H2Client(z.port)
        try:
            sid = c.request("/t")
            resp, data = c.wait(sid)
            assert resp[":status"] == "200" and data == b"hello world"
            assert c.trailers.get(sid) == {"x-sum": "abc", "grpc-status": "0"}, c.trailers
        finally:
            c.close()
    finally:
        up.close()
