"""TLS pass-through routed by SNI (tcp_proxy.sni_routes): three TLS backends with different
certificates behind one tcp_proxy listener that never terminates TLS. A client verifying
the certificate against the name it asked for proves which backend it reached; a completed
handshake proves the ClientHello went through untouched (its bytes are in the transcript
every Finished message covers). Exact names, a "*." wildcard, no SNI and an unknown name
(the default cluster), ALPN, a ClientHello split across TCP segments and across TLS
records, garbage, a silent client, a client that leaves early, in every pass-through mode
(a fallback from a mode this machine has fails: machine.py), the metrics, validation errors
naming the field, and a live change through the Admin API."""

import copy
import hashlib
import json
import random
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

import ctl
import machine
import tunnel_modes
import yamlgen
from procs import base_config, run_check, wait_until
from test_metrics import scrape
from tlscerts import Certs

MODES = ["sockmap", "splice", "copy"]
# What a tcp_proxy connection needs for each mode (its descriptors are regular ones).
MODE_NEEDS = {"sockmap": ("sockmap",), "splice": ("io_uring_splice",), "copy": ()}
LISTENER = "tls-pass"
HELLO_TIMEOUT_MS = 1000


class TlsBackend:
    """A TLS server (Python ssl, TLS 1.2/1.3, ALPN h2 and http/1.1) with one certificate.
    Per connection, after the handshake: a line "NAME sni=SNI alpn=ALPN\\n", then a request
    of 8-byte length + bytes, answered with their SHA-256 (length 0: nothing more)."""

    def __init__(self, name, cert):
        self.name = name
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert["cert"], cert["key"])
        self.ctx.set_alpn_protocols(["h2", "http/1.1"])
        self.ctx.sni_callback = self._on_sni
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.accepted = 0
        self.handshakes = 0
        self._sni = {}
        threading.Thread(target=self._serve, daemon=True).start()

    def _on_sni(self, sslobj, name, ctx):
        self._sni[id(sslobj)] = name

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def _handle(self, raw):
        raw.settimeout(10)
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as s:
                self.handshakes += 1
                # The callback sees the SSLSocket (or its SSLObject, by Python version).
                sni = self._sni.pop(id(s), None) or self._sni.pop(id(s._sslobj), None)
                s.sendall(b"%s sni=%s alpn=%s\n" % (self.name.encode(), str(sni).encode(),
                                                     str(s.selected_alpn_protocol()).encode()))
                n = struct.unpack("!Q", _read_exactly(s, 8))[0]
                if n == 0:
                    return
                h = hashlib.sha256()
                while n > 0:
                    b = s.recv(min(n, 1 << 16))
                    if not b:
                        return
                    h.update(b)
                    n -= len(b)
                s.sendall(h.digest())
        except (OSError, ssl.SSLError, EOFError):
            pass  # the client went away (some tests close right after the greeting)

    def close(self):
        self.sock.close()


def _read_exactly(s, n):
    got = b""
    while len(got) < n:
        b = s.recv(n - len(got))
        if not b:
            raise EOFError("closed after %d of %d bytes" % (len(got), n))
        got += b
    return got


def _readline(s):
    got = b""
    while not got.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            raise EOFError("closed after %r" % got)
        got += b
    return got.decode().strip()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    c = Certs(str(tmp_path_factory.mktemp("sni-certs")))
    c.a = c.leaf("a", ["a.example.com", "*.b.example.com"], "ec")
    c.h2 = c.leaf("h2", ["h2.example.com"], "ec")
    c.default = c.leaf("default", ["default.test"], "rsa")
    return c


@pytest.fixture(scope="module")
def backends(certs):
    b = {"a-tls": TlsBackend("A", certs.a), "h2-tls": TlsBackend("H2", certs.h2),
         "default-tls": TlsBackend("D", certs.default)}
    yield b
    for x in b.values():
        x.close()


def sni_config(backends, mode="auto", routes=None, **tcp):
    tp = {"cluster": "default-tls", "mode": mode, "client_hello_timeout_ms": HELLO_TIMEOUT_MS,
          "sni_routes": routes if routes is not None else [
              {"server_names": ["a.example.com", "*.b.example.com"], "cluster": "a-tls"},
              {"server_names": ["h2.example.com"], "alpn": ["h2"], "cluster": "h2-tls"}]}
    tp.update(tcp)
    return base_config([{"name": LISTENER, "address": "127.0.0.1:0", "tcp_proxy": tp}],
                       [{"name": n, "endpoints": [b.addr]} for n, b in sorted(backends.items())])


def require_mode(z, mode):
    """The listener must get `mode` where the machine has what it needs."""
    fams = scrape(z)
    [used] = [l["mode"] for _, l, _ in fams["zproxy_listener_passthrough_mode"].samples
              if l["listener"] == LISTENER]
    if used != mode:
        machine.fallback(MODE_NEEDS[mode], "listener %s: pass-through mode %s -> %s"
                         % (LISTENER, mode, used))


def client_ctx(certs, verify_name=True, alpn=None):
    ctx = ssl.create_default_context(cafile=certs.path("ca.pem"))
    ctx.check_hostname = verify_name
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def tls_connect(z, certs, server_name, verify_name=True, alpn=None):
    """A TLS connection through the listener; returns (socket, greeting line)."""
    raw = socket.create_connection(("127.0.0.1", z.port), timeout=10)
    s = client_ctx(certs, verify_name and server_name is not None, alpn).wrap_socket(
        raw, server_hostname=server_name)
    return s, _readline(s)


def greeting(z, certs, server_name, **kw):
    s, line = tls_connect(z, certs, server_name, **kw)
    with s:
        s.sendall(struct.pack("!Q", 0))
    return line


def routed(z, cluster):
    return scrape(z)["zproxy_tcp_sni_routed_total"].value(listener=LISTENER, cluster=cluster)


def failures(z, reason):
    return scrape(z)["zproxy_tcp_client_hello_failures_total"].value(listener=LISTENER,
                                                                     reason=reason)


def expect_closed(s, within):
    """The proxy closes s (EOF or RST) within `within` seconds; returns how long it took."""
    t0 = time.monotonic()
    s.settimeout(within + 2)
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass
    took = time.monotonic() - t0
    assert took < within, "closed after %.2f s" % took
    return took


def raw_client_hello(certs, server_name, alpn=None):
    """The ClientHello Python's ssl would send, and the SSLObject to continue with."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx(certs, alpn=alpn).wrap_bio(inc, out, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read(), obj, inc, out


def finish_handshake(sock, obj, inc, out):
    """Drives the SSLObject's handshake over sock, then returns the server's greeting."""
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = out.read()
            if pending:
                sock.sendall(pending)
            b = sock.recv(1 << 16)
            if not b:
                raise EOFError("closed during the handshake")
            inc.write(b)
    pending = out.read()
    if pending:
        sock.sendall(pending)
    line = b""
    while not line.endswith(b"\n"):
        try:
            line += obj.read(1)
        except ssl.SSLWantReadError:
            b = sock.recv(1 << 16)
            if not b:
                raise EOFError("closed before the greeting")
            inc.write(b)
    return line.decode().strip()


def records(hello, cuts):
    """Re-frames the handshake message of a one-record ClientHello as several TLS records,
    cut at the given offsets of the message (legal: handshake messages may be fragmented)."""
    assert hello[0] == 22 and len(hello) == 5 + struct.unpack("!H", hello[3:5])[0]
    msg, out, last = hello[5:], b"", 0
    for c in list(cuts) + [len(msg)]:
        out += hello[:3] + struct.pack("!H", c - last) + msg[last:c]
        last = c
    return out


@pytest.mark.parametrize("mode", MODES)
def test_server_name_picks_the_backend(make_proxy, certs, backends, mode):
    z = make_proxy(sni_config(backends, mode))
    require_mode(z, mode)
    # The certificate is verified against the name asked for: the right backend answered.
    assert greeting(z, certs, "a.example.com") == "A sni=a.example.com alpn=None"
    assert greeting(z, certs, "x.b.example.com") == "A sni=x.b.example.com alpn=None"
    # Deeper than the certificate's wildcard covers, but the pattern matches at any depth.
    assert greeting(z, certs, "deep.x.b.example.com", verify_name=False) == \
        "A sni=deep.x.b.example.com alpn=None"
    assert greeting(z, certs, "A.EXAMPLE.COM") == "A sni=A.EXAMPLE.COM alpn=None"
    assert greeting(z, certs, "default.test") == "D sni=default.test alpn=None"
    # No SNI, and a name no entry has: the default cluster.
    assert greeting(z, certs, None) == "D sni=None alpn=None"
    assert greeting(z, certs, "unknown.example.com", verify_name=False) == \
        "D sni=unknown.example.com alpn=None"
    assert greeting(z, certs, "b.example.com", verify_name=False).startswith("D ")
    # 1 MB through the chosen backend, intact.
    s, line = tls_connect(z, certs, "a.example.com")
    data = random.Random(1).randbytes(1 << 20)
    with s:
        s.sendall(struct.pack("!Q", len(data)) + data)
        assert _read_exactly(s, 32) == hashlib.sha256(data).digest()
    assert routed(z, "a-tls") == 5
    assert routed(z, "default-tls") == 4
    assert routed(z, "h2-tls") == 0
    fams = scrape(z)
    # Every connection in the listener's mode: none fell back on its own.
    assert fams["zproxy_passthrough_connections_total"].value(mode=mode) == 9
    assert fams["zproxy_tunnel_fallbacks_total"].value() == 0
    for reason in ("timeout", "malformed", "closed"):
        assert failures(z, reason) == 0
    assert wait_until(lambda: scrape(z)["zproxy_connections_open"].value() == 0, 5)


def test_sockmap_pairs_are_gone_after_many_connections(make_proxy, certs, backends):
    """Connections routed to three clusters by name, in sockmap mode: each pair leaves the
    SOCKHASH when it ends, whatever cluster the ClientHello chose."""
    z = make_proxy(sni_config(backends, "sockmap"))
    require_mode(z, "sockmap")
    names = [("a.example.com", "A "), ("x.b.example.com", "A "), (None, "D "),
             ("h2.example.com", "D ")]
    for i in range(60):
        name, who = names[i % len(names)]
        assert greeting(z, certs, name, verify_name=False).startswith(who)
    assert routed(z, "a-tls") == 30 and routed(z, "default-tls") == 30
    assert scrape(z)["zproxy_passthrough_connections_total"].value(mode="sockmap") == 60
    assert wait_until(lambda: scrape(z)["zproxy_connections_open"].value() == 0, 5)
    tunnel_modes.assert_no_pairs(z)


def test_alpn_narrows_an_entry(make_proxy, certs, backends):
    z = make_proxy(sni_config(backends))
    assert greeting(z, certs, "h2.example.com", alpn=["h2", "http/1.1"]) == \
        "H2 sni=h2.example.com alpn=h2"
    # The entry wants h2: without it (or without ALPN) the name falls to the default.
    assert greeting(z, certs, "h2.example.com", verify_name=False, alpn=["http/1.1"]) == \
        "D sni=h2.example.com alpn=http/1.1"
    assert greeting(z, certs, "h2.example.com", verify_name=False).startswith("D ")
    assert routed(z, "h2-tls") == 1


def test_openssl_s_client_servername(make_proxy, certs, backends):
    z = make_proxy(sni_config(backends))
    for name, cn in (("a.example.com", "a.example.com"), ("x.b.example.com", "a.example.com"),
                     ("h2.example.com", "default.test")):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % z.port,
                            "-servername", name, "-CAfile", certs.path("ca.pem"),
                            "-verify_return_error", "-brief"],
                           input="", capture_output=True, text=True, timeout=20)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "Verification: OK" in out, out
        assert "CN = %s" % cn in out or "CN=%s" % cn in out, out


@pytest.mark.parametrize("mode", MODES)
def test_client_hello_in_pieces(make_proxy, certs, backends, mode):
    """The ClientHello arrives in several TCP segments with pauses, or as several TLS
    records: the proxy waits for all of it, routes by it and forwards it unchanged."""
    z = make_proxy(sni_config(backends, mode))
    require_mode(z, mode)
    hello, obj, inc, out = raw_client_hello(certs, "a.example.com")
    s = socket.create_connection(("127.0.0.1", z.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for piece in (hello[:1], hello[1:4], hello[4:9], hello[9:60], hello[60:]):
        s.sendall(piece)
        time.sleep(0.15)
    with s:
        assert finish_handshake(s, obj, inc, out) == "A sni=a.example.com alpn=None"

    hello, obj, inc, out = raw_client_hello(certs, "x.b.example.com", alpn=["h2"])
    s = socket.create_connection(("127.0.0.1", z.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    framed = records(hello, [2, 50, 120])  # a cut inside the handshake header too
    for i in range(0, len(framed), 97):
        s.sendall(framed[i:i + 97])
        time.sleep(0.05)
    with s:
        assert finish_handshake(s, obj, inc, out) == "A sni=x.b.example.com alpn=h2"
    assert routed(z, "a-tls") == 2
    assert scrape(z)["zproxy_passthrough_connections_total"].value(mode=mode) == 2


def test_garbage_is_closed_at_once_and_counted(make_proxy, backends):
    z = make_proxy(sni_config(backends))
    accepted = sum(b.accepted for b in backends.values())
    for junk in (b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
                 b"SSH-2.0-OpenSSH_9.2\r\n",
                 b"\x15\x03\x01\x00\x02\x02\x28",            # a TLS alert record
                 b"\x16\x03\x01\x00\x30\x02" + b"\0" * 47,  # a ServerHello
                 b"x"):  # one byte, then nothing
        s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
        s.sendall(junk)
        # Refused on the first wrong byte, not after the ClientHello timeout.
        with s:
            expect_closed(s, HELLO_TIMEOUT_MS / 1000 / 2)
    assert wait_until(lambda: failures(z, "malformed") == 5, 3)
    assert failures(z, "timeout") == 0
    assert sum(b.accepted for b in backends.values()) == accepted  # nothing connected
    assert wait_until(lambda: scrape(z)["zproxy_connections_open"].value() == 0, 3)


def test_silent_client_is_closed_after_the_timeout(make_proxy, certs, backends):
    z = make_proxy(sni_config(backends))
    accepted = sum(b.accepted for b in backends.values())
    s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
    with s:
        took = expect_closed(s, HELLO_TIMEOUT_MS / 1000 + 1.5)
    assert took >= HELLO_TIMEOUT_MS / 1000 * 0.9, "closed after %.2f s, before the timeout" % took
    # Half a ClientHello, then silence: the same.
    hello, _, _, _ = raw_client_hello(certs, "a.example.com")
    s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
    s.sendall(hello[:len(hello) // 2])
    with s:
        took = expect_closed(s, HELLO_TIMEOUT_MS / 1000 + 1.5)
    assert took >= HELLO_TIMEOUT_MS / 1000 * 0.9
    assert wait_until(lambda: failures(z, "timeout") == 2, 3)
    assert failures(z, "malformed") == 0
    assert sum(b.accepted for b in backends.values()) == accepted


def test_client_leaving_before_its_hello_is_counted(make_proxy, certs, backends):
    z = make_proxy(sni_config(backends))
    socket.create_connection(("127.0.0.1", z.port), timeout=5).close()
    hello, _, _, _ = raw_client_hello(certs, "a.example.com")
    s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
    s.sendall(hello[:40])
    s.shutdown(socket.SHUT_WR)  # half a ClientHello and a FIN: no more is coming
    with s:
        expect_closed(s, HELLO_TIMEOUT_MS / 1000 / 2)
    assert wait_until(lambda: failures(z, "closed") == 2, 3)
    assert failures(z, "timeout") == 0
    # A whole ClientHello followed by the FIN still goes through (the upstream gets both).
    s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
    s.sendall(hello)
    s.shutdown(socket.SHUT_WR)
    with s:
        s.recv(1)  # the backend answers the hello (then sees the FIN), or closes
    assert wait_until(lambda: routed(z, "a-tls") == 1, 3)


BAD_CONFIGS = {
    "unknown_cluster": (lambda r: r[0].update(cluster="nope"),
                        "listeners[0].tcp_proxy.sni_routes[0].cluster", "unknown cluster \"nope\""),
    "bad_pattern": (lambda r: r[0].update(server_names=["a.*.example.com"]),
                    "listeners[0].tcp_proxy.sni_routes[0].server_names[0]", "wildcard"),
    "ip_address": (lambda r: r[0].update(server_names=["127.0.0.1"]),
                   "listeners[0].tcp_proxy.sni_routes[0].server_names[0]", "IP address"),
    "duplicate_name": (lambda r: r.append({"server_names": ["A.example.com"], "cluster": "h2-tls"}),
                       "listeners[0].tcp_proxy.sni_routes[2].server_names[0]",
                       "duplicate server name \"a.example.com\" (already in "
                       "listeners[0].tcp_proxy.sni_routes[0].server_names[0])"),
    "duplicate_in_entry": (lambda r: r[0].update(server_names=["a.example.com", "a.example.com"]),
                           "listeners[0].tcp_proxy.sni_routes[0].server_names[1]",
                           "duplicate server name"),
    "no_names": (lambda r: r[0].pop("server_names"),
                 "listeners[0].tcp_proxy.sni_routes[0].server_names", "at least one server name"),
    "empty_alpn": (lambda r: r[1].update(alpn=[""]),
                   "listeners[0].tcp_proxy.sni_routes[1].alpn[0]", "1..255 bytes"),
    "unknown_key": (lambda r: r[0].update(server_name=["a.example.com"]),
                    "listeners[0].tcp_proxy.sni_routes[0]", "unknown field \"server_name\""),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_validation_names_the_field(tmp_path, backends, case):
    mutate, field, message = BAD_CONFIGS[case]
    cfg = sni_config(backends)
    mutate(cfg["listeners"][0]["tcp_proxy"]["sni_routes"])
    p = tmp_path / "c.yaml"
    p.write_text(yamlgen.dump(cfg))
    r = run_check(str(p))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert field in r.stderr and message in r.stderr, r.stderr


def test_check_accepts_the_documented_example(tmp_path, backends):
    cfg = sni_config(backends)
    p = tmp_path / "c.yaml"
    p.write_text(yamlgen.dump(cfg))
    r = run_check(str(p))
    assert r.returncode == 0, r.stderr


def test_admin_api_round_trip_and_live_change(make_proxy, certs, backends, tmp_path):
    z = make_proxy(sni_config(backends))
    assert greeting(z, certs, "x.b.example.com") == "A sni=x.b.example.com alpn=None"
    text = json.dumps(ctl.jsonout(z, "config", "get"))
    for word in ("sni_routes", "*.b.example.com", "client_hello_timeout_ms"):
        assert word in text or word.replace("_", "") in text.lower().replace("_", ""), text
    # The same config with *.b.example.com moved to its own entry on another cluster.
    cfg = copy.deepcopy(z.config)
    cfg["listeners"][0]["tcp_proxy"]["sni_routes"] = [
        {"server_names": ["a.example.com"], "cluster": "a-tls"},
        {"server_names": ["*.b.example.com"], "cluster": "default-tls"}]
    p = tmp_path / "live.yaml"
    p.write_text(yamlgen.dump(cfg))
    ctl.ok(z, "config", "apply", str(p))
    assert wait_until(lambda: greeting(z, certs, "x.b.example.com", verify_name=False)
                      .startswith("D "), 5)
    assert greeting(z, certs, "a.example.com") == "A sni=a.example.com alpn=None"
    assert "default-tls" in json.dumps(ctl.jsonout(z, "config", "get"))
