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
    # Methods not routed: 404 from zproxy, as over HTTP/1.1.
    _, code, body = curl_h2(stack.port, "/x/", "-H", "Host: nowhere.example")
    assert code in (200, 404)


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
