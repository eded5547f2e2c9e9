"""TLS listeners: SNI, ALPN, versions, resumption, bad clients, bodies and config errors,
with real clients (curl, openssl s_client, Python's ssl) against real zproxyd."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

import ctl
import httpraw
import machine
import promtext
import yamlgen
from conftest import catch_all, cluster, listener
from httpraw import Conn, build_request
from procs import base_config, run_check, wait_until
from tlscerts import Certs

MB = 1 << 20


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("certs")))


def tls_listener(name, certs, routes, **tls):
    l = listener(name, routes)
    l["tls"] = {"certificates": [certs.ecdsa, certs.rsa, certs.wild]}
    l["tls"].update(tls)
    return l


@pytest.fixture(scope="module")
def proxy(backends, certs, tmp_path_factory):
    """Listener "web" (TLS, defaults) and "tls13" (TLS, min_version TLS1_3, strict_sni)."""
    from conftest import _finish, _live_proxies  # noqa: the module-scoped twin of make_proxy
    from procs import Zproxy
    cfg = base_config(
        [tls_listener("web", certs, catch_all("a")),
         tls_listener("tls13", certs, catch_all("a"), min_version="TLS1_3", strict_sni=True,
                      handshake_timeout_ms=500)],
        [cluster("a", backends["a"].addr)])
    z = Zproxy(cfg, str(tmp_path_factory.mktemp("tlsproxy")), name="tls")
    _live_proxies.append(z)
    yield z

    class _Req:  # _finish only reads the node for its report
        node = None
    _finish(z, _Req())


def metrics(z):
    return promtext.parse(httpraw.request(z.metrics_port, target="/metrics").body.decode())


def failures(z, reason):
    return metrics(z)["zproxy_tls_handshake_failures_total"].value(reason=reason)


def curl(port, name, path="/", extra=(), cacert=None, timeout=20):
    args = ["curl", "-sS", "-v", "--max-time", str(timeout), "--resolve",
            "%s:%d:127.0.0.1" % (name, port)]
    args += ["--cacert", cacert] if cacert else ["-k"]
    args += list(extra) + ["https://%s:%d%s" % (name, port, path)]
    return subprocess.run(args, capture_output=True, timeout=timeout + 5)


def s_client(port, *args, data=b"", servername="example.com"):
    """openssl s_client; sends `data` (after the handshake), reads until the server closes.
    Returns stdout+stderr."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", servername,
           "-ign_eof"] + list(args)
    out = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=20).stdout
    return out.decode("utf-8", "replace")


CLOSE_REQ = b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"


def test_sni_selects_exact_wildcard_and_default(proxy, certs):
    r = curl(proxy.port, "www.example.com", "/echo", cacert=certs.path("ca.pem"))
    assert r.returncode == 0, r.stderr  # verified against the CA, for the name asked
    assert b"subject: CN=example.com" in r.stderr
    echo = json.loads(r.stdout)
    assert ["X-Forwarded-Proto", "https"] in echo["headers"]

    r = curl(proxy.port, "a.wild.test", "/", cacert=certs.path("ca.pem"))
    assert r.returncode == 0, r.stderr
    assert b"subject: CN=*.wild.test" in r.stderr
    # a.b.wild.test is not covered by *.wild.test: the default (first) certificate.
    r = curl(proxy.port, "a.b.wild.test", "/")
    assert r.returncode == 0, r.stderr
    assert b"subject: CN=example.com" in r.stderr
    r = curl(proxy.port, "unknown.test", "/")
    assert r.returncode == 0, r.stderr
    assert b"subject: CN=example.com" in r.stderr


def test_strict_sni_refuses_unknown_name(proxy):
    before = failures(proxy, "unknown_sni")
    r = curl(proxy.ports["tls13"], "unknown.test", "/")
    assert r.returncode != 0
    assert curl(proxy.ports["tls13"], "a.wild.test", "/").returncode == 0
    assert wait_until(lambda: failures(proxy, "unknown_sni") == before + 1, 3)


def test_key_type_follows_client_signature_algorithms(proxy):
    out = s_client(proxy.port, "-sigalgs", "RSA-PSS+SHA256:RSA+SHA256", data=CLOSE_REQ)
    assert "Server public key is 2048 bit" in out, out
    out = s_client(proxy.port, data=CLOSE_REQ)
    assert "Server public key is 256 bit" in out, out


def test_alpn_prefers_h2_then_http11(proxy):
    # The default offer is [h2, http/1.1], server preference.
    r = curl(proxy.port, "example.com", "/", extra=["--http2"])
    assert r.returncode == 0, r.stderr
    assert b"ALPN: server accepted h2" in r.stderr, r.stderr
    assert b"< HTTP/2 200" in r.stderr, r.stderr
    out = s_client(proxy.port, "-alpn", "http/1.1", data=CLOSE_REQ)
    assert "ALPN protocol: http/1.1" in out, out
    assert "HTTP/1.1 200" in out
    out = s_client(proxy.port, "-alpn", "spdy/3", data=CLOSE_REQ)
    assert "No ALPN negotiated" in out, out


def test_tls12_and_tls13_and_min_version(proxy):
    for flag, proto in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
        out = s_client(proxy.port, flag, data=CLOSE_REQ)
        assert "Protocol  : " + proto in out and "HTTP/1.1 200" in out, out
    before = failures(proxy, "version")
    out = s_client(proxy.ports["tls13"], "-tls1_2", data=CLOSE_REQ)
    assert "HTTP/1.1 200" not in out
    assert wait_until(lambda: failures(proxy, "version") == before + 1, 3)
    out = s_client(proxy.ports["tls13"], "-tls1_3", data=CLOSE_REQ, servername="www.example.com")
    assert "HTTP/1.1 200" in out, out


def test_no_shared_cipher_is_refused_and_counted(proxy):
    """TLS 1.2 offers only ECDHE with AEADs: a client with just CBC/RSA key exchange fails."""
    before = failures(proxy, "no_shared_cipher")
    out = s_client(proxy.port, "-tls1_2", "-cipher", "AES128-SHA:AES256-SHA", data=CLOSE_REQ)
    assert "HTTP/1.1 200" not in out
    assert wait_until(lambda: failures(proxy, "no_shared_cipher") == before + 1, 3), out


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_resumption_with_session_ticket(proxy, tmp_path, version):
    sess = str(tmp_path / "sess.pem")
    out = s_client(proxy.port, version, "-sess_out", sess, data=CLOSE_REQ)
    assert "New, TLSv1" in out and "HTTP/1.1 200" in out, out
    out = s_client(proxy.port, version, "-sess_in", sess, data=CLOSE_REQ)
    assert "Reused, TLSv1" in out and "HTTP/1.1 200" in out, out


def test_resumption_across_workers(backends, certs, make_proxy, tmp_path):
    """A ticket from one worker resumes on the other: the ticket keys are shared."""
    z = make_proxy(base_config([tls_listener("web", certs, catch_all("a"))],
                               [cluster("a", backends["a"].addr)], workers=2))
    sess = str(tmp_path / "sess.pem")
    before = metrics(z)["zproxy_tls_handshakes_total"]  # the readiness probe made one
    out = s_client(z.port, "-tls1_3", "-sess_out", sess, data=CLOSE_REQ)
    assert "New, TLSv1.3" in out, out
    full = metrics(z)["zproxy_tls_handshakes_total"]
    issuer = [w for w in ("0", "1") if full.value(worker=w, result="full") >
              before.value(worker=w, result="full")]
    assert len(issuer) == 1
    other = "1" if issuer[0] == "0" else "0"
    # Connections spread over the workers (SO_REUSEPORT); resume until the other one
    # served one (pinning the client to each CPU in turn helps CPU-based steering).
    for i in range(24):
        cpu = str(i % max(1, os.cpu_count()))
        out = subprocess.run(
            ["taskset", "-c", cpu, "openssl", "s_client", "-connect", "127.0.0.1:%d" % z.port,
             "-servername", "example.com", "-tls1_3", "-sess_in", sess],
            input=b"", capture_output=True, timeout=15).stdout.decode()
        assert "Reused, TLSv1.3" in out, out
        if metrics(z)["zproxy_tls_handshakes_total"].value(worker=other, result="resumed") > 0:
            break
    fam = metrics(z)["zproxy_tls_handshakes_total"]
    assert fam.value(worker=other, result="resumed") > 0, "no resumption on worker " + other
    assert fam.value(result="full") == before.value(result="full") + 1


def _garbage_client(port, payload):
    """Sends payload; returns True once the server closed the connection (EOF or RST)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                return True
            if not data:
                return True
        return False


def test_garbage_closes_cleanly_counted_while_good_clients_continue(proxy):
    before = failures(proxy, "not_tls")
    errors = []
    stop = threading.Event()
    done = [0]

    def good_client():
        try:
            with Conn(proxy.port, tls=True, server_name="example.com", timeout=10) as c:
                while not stop.is_set():
                    c.send(build_request(target="/", host="example.com"))
                    r = c.read_response()
                    if r.status != 200:
                        errors.append(r)
                    done[0] += 1
        except Exception as e:  # noqa: any failure of a good client fails the test
            errors.append(e)

    threads = [threading.Thread(target=good_client) for _ in range(3)]
    for t in threads:
        t.start()
    payloads = [os.urandom(3000), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00" * 100,
                b"\x16\x03\x01\x00\x05hello-not-a-client-hello" + os.urandom(500)]
    bad = 0
    for i in range(12):
        p = payloads[i % len(payloads)]
        assert _garbage_client(proxy.port, p), "connection not closed after %r" % p[:20]
        bad += 1 if p[0] != 0x16 else 0
    stop.set()
    for t in threads:
        t.join(15)
    assert not errors, errors[:3]
    assert done[0] > 0
    assert wait_until(lambda: failures(proxy, "not_tls") >= before + bad, 3)
    assert proxy.proc.poll() is None


def test_handshake_timeout(proxy):
    before = failures(proxy, "timeout")
    with socket.create_connection(("127.0.0.1", proxy.ports["tls13"]), timeout=5) as s:
        s.sendall(b"\x16\x03\x01")  # the start of a record, then nothing
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - t0 < 3
    assert wait_until(lambda: failures(proxy, "timeout") == before + 1, 3)


def test_large_bodies_both_ways(proxy):
    body = os.urandom(MB)
    with Conn(proxy.port, tls=True, timeout=30) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        j = json.loads(c.read_response().body)
        assert j["body_len"] == len(body) and j["body_hash"] == httpraw.fnv1a64(body)
        c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" +
               httpraw.chunked(body, sizes=(1, 777, 65536, 1 << 20)))
        j = json.loads(c.read_response().body)
        assert j["body_len"] == len(body) and j["body_hash"] == httpraw.fnv1a64(body)
        n = 1_000_003
        c.send(build_request(target="/bytes/%d" % n))
        r = c.read_response()
        assert r.complete and r.body == httpraw.pattern(n)
        c.send(build_request(target="/chunked/%d" % n))
        r = c.read_response()
        assert r.framing == "chunked" and r.complete and r.body == httpraw.pattern(n)


def test_download_with_curl_intact(proxy):
    n = 5_000_000
    r = curl(proxy.port, "example.com", "/bytes/%d" % n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == httpraw.pattern(n)


def test_keepalive_and_pipelining(proxy):
    with Conn(proxy.port, tls=True, timeout=10) as c:
        for i in range(5):
            c.send(build_request(target="/echo?k=%d" % i))
            r = c.read_response()
            assert r.status == 200 and json.loads(r.body)["target"] == "/echo?k=%d" % i
        c.send(b"".join(build_request(target="/echo?p=%d" % i) for i in range(8)))
        for i in range(8):
            r = c.read_response()
            assert r.status == 200 and json.loads(r.body)["target"] == "/echo?p=%d" % i


def test_connections_counted_by_mode_and_offload_outcome(proxy):
    m = metrics(proxy)
    fam, off = m["zproxy_tls_connections_total"], m["zproxy_tls_offload_total"]
    assert fam.label_values("mode") == {"userspace", "ktls"}
    before = fam.value(mode="userspace") + fam.value(mode="ktls")
    before_off = off.value()
    assert curl(proxy.port, "example.com", "/").returncode == 0
    m = metrics(proxy)
    fam, off = m["zproxy_tls_connections_total"], m["zproxy_tls_offload_total"]
    assert fam.value(mode="userspace") + fam.value(mode="ktls") == before + 1
    assert off.value() == before_off + 1  # one outcome per connection
    ktls = m["zproxy_dataplane_info"].label_values("ktls")
    assert ktls == {"1" if machine.has("ktls") else "0"}, machine.get()["ktls"]
    if ktls == {"0"}:
        assert off.value(outcome="no_kernel_support") > 0


def test_access_log_names_protocol_and_cipher(backends, certs, make_proxy, tmp_path):
    log = tmp_path / "access.log"
    z = make_proxy(base_config([tls_listener("web", certs, catch_all("a"))],
                               [cluster("a", backends["a"].addr)], access_log=str(log)))
    for version in ("--http1.1", "--http2"):
        assert curl(z.port, "example.com", "/echo",
                    extra=["--tlsv1.2", "--tls-max", "1.2", version]).returncode == 0

    def lines():
        return [l for l in log.read_text().splitlines() if "__zproxy_e2e_ready" not in l] \
            if log.exists() else []
    got = wait_until(lambda: len(lines()) >= 2 and lines(), 5)
    # ... note tls request_id traceparent
    assert got and got[-1].split(" ")[-3].startswith("TLSv1.2/TLS_ECDHE_"), got
    # One line per request, each with the protocol the client spoke and the bytes it got.
    for line, proto in zip(got[-2:], ("HTTP/1.1", "HTTP/2.0")):
        assert '"GET /echo %s" 200 ' % proto in line, got
        assert int(line.split('" 200 ')[1].split(" ")[0]) > 0, line


def test_offload_attempt_path_keeps_connections_working(backends, certs, make_proxy,
                                                         monkeypatch):
    """ZPROXY_KTLS_ALWAYS_ATTEMPT=1: every connection goes through the kTLS hand-over
    (receive paused, output drained, installer called, receive resumed) even on a kernel
    without kTLS, where the installer refuses: nothing may stall or get lost on the way."""
    monkeypatch.setenv("ZPROXY_KTLS_ALWAYS_ATTEMPT", "1")
    z = make_proxy(base_config([tls_listener("web", certs, catch_all("a"))],
                               [cluster("a", backends["a"].addr)]))
    body = os.urandom(MB)
    for i in range(5):
        with Conn(z.port, tls=True, timeout=10) as c:
            # Requests right behind the handshake: they may reach the proxy with the
            # client's Finished (then: pending_data) or after it.
            c.send(b"".join(build_request(target="/echo?p=%d" % k) for k in range(3)))
            for k in range(3):
                r = c.read_response()
                assert r.status == 200 and json.loads(r.body)["target"] == "/echo?p=%d" % k
            c.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body)
                   + body)
            j = json.loads(c.read_response().body)
            assert j["body_len"] == len(body) and j["body_hash"] == httpraw.fnv1a64(body)
    off = metrics(z)["zproxy_tls_offload_total"]
    # Five connections plus the readiness probe, each with exactly one outcome.
    assert off.value() == 6
    # ZPROXY_KTLS_ALWAYS_ATTEMPT makes the data plane report ktls=1: only the canary says
    # whether the kernel really has it.
    if not machine.has("ktls"):
        assert off.value(outcome="installed") == 0
        assert off.value(outcome="no_kernel_support") + off.value(outcome="pending_data") == 6


def _write(tmp_path, cfg, name):
    p = tmp_path / name
    p.write_text(yamlgen.dump(cfg))
    return str(p)


def _tls_cfg(certs, certificates, admin="unix:/tmp/zp-check/admin.sock"):
    l = listener("web", catch_all("a"))
    l["tls"] = {"certificates": certificates}
    return base_config([l], [cluster("a", "127.0.0.1:3000")], admin_address=admin)


BAD_TLS = {
    "no_certificates": (lambda c: [], "listeners[0].tls.certificates", "at least one"),
    "unreadable_cert": (lambda c: [{"cert": "/nonexistent/x.pem", "key": c.ecdsa["key"]}],
                        "listeners[0].tls.certificates[0].cert", "cannot read"),
    "key_mismatch": (lambda c: [c.ecdsa, {"cert": c.wild["cert"], "key": c.rsa["key"]}],
                     "listeners[0].tls.certificates[1].key", "does not match"),
    "key_not_pem": (lambda c: [{"cert": c.ecdsa["cert"], "key": c.ecdsa["cert"]}],
                    "listeners[0].tls.certificates[0].key", "no PEM private key"),
}


@pytest.mark.parametrize("case", sorted(BAD_TLS))
def test_check_rejects_bad_tls_naming_the_field(certs, tmp_path, case):
    make, field, why = BAD_TLS[case]
    r = run_check(_write(tmp_path, _tls_cfg(certs, make(certs)), "bad.yaml"))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert field in r.stderr and why in r.stderr, r.stderr


def test_check_takes_h2_alpn_and_rejects_unknown(certs, tmp_path):
    cfg = _tls_cfg(certs, [certs.ecdsa])
    cfg["listeners"][0]["tls"]["alpn"] = ["h2", "http/1.1"]
    r = run_check(_write(tmp_path, cfg, "h2.yaml"))
    assert r.returncode == 0, r.stderr
    cfg["listeners"][0]["tls"]["alpn"] = ["h2", "h3"]
    r = run_check(_write(tmp_path, cfg, "h3.yaml"))
    assert r.returncode == 1 and "listeners[0].tls.alpn[1]" in r.stderr, r.stderr
    assert 'unsupported protocol "h3"' in r.stderr, r.stderr


def test_admin_api_rejects_bad_tls_and_keeps_serving(backends, certs, make_proxy, tmp_path):
    z = make_proxy(base_config([tls_listener("web", certs, catch_all("a"))],
                               [cluster("a", backends["a"].addr)]))
    assert curl(z.port, "example.com", "/").returncode == 0
    bad = dict(z.config)
    bad["listeners"] = [dict(z.config["listeners"][0])]
    bad["listeners"][0]["tls"] = {"certificates": [{"cert": certs.ecdsa["cert"],
                                                     "key": certs.rsa["key"]}]}
    r = ctl.run(z, "config", "apply", _write(tmp_path, bad, "bad.yaml"))
    assert r.returncode == 1
    assert "listeners[0].tls.certificates[0].key" in r.stderr, r.stderr
    r = curl(z.port, "example.com", "/echo", cacert=certs.path("ca.pem"))
    assert r.returncode == 0, r.stderr
    # A good change (another certificate list) applies in place and serves at once.
    good = dict(bad)
    good["listeners"] = [dict(bad["listeners"][0])]
    good["listeners"][0]["tls"] = {"certificates": [certs.other, certs.ecdsa]}
    ctl.ok(z, "config", "apply", _write(tmp_path, good, "good.yaml"))
    r = curl(z.port, "unknown.test", "/")
    assert r.returncode == 0 and b"subject: CN=other.test" in r.stderr, r.stderr


def test_example_tls_config_checks(certs, tmp_path):
    """examples/zproxy-tls.yaml with its certificate paths pointed at generated files."""
    import procs
    text = open(os.path.join(procs.ROOT, "examples", "zproxy-tls.yaml")).read()
    paths = {"/etc/zproxy/tls/example.com.ecdsa": certs.ecdsa,
             "/etc/zproxy/tls/example.com.rsa": certs.rsa,
             "/etc/zproxy/tls/wildcard.example.net": certs.wild}
    for prefix, files in paths.items():
        text = text.replace(prefix + ".pem", files["cert"]).replace(prefix + ".key", files["key"])
    assert "/etc/zproxy/tls" not in "".join(l for l in text.splitlines() if not l.startswith("#"))
    p = tmp_path / "tls.yaml"
    p.write_text(text + "admin_address: unix:/tmp/zp-check/admin.sock\n")
    r = run_check(str(p))
    assert r.returncode == 0, r.stderr


def test_tls_added_and_removed_at_run_time(backends, certs, make_proxy, tmp_path):
    """A running plaintext listener gets a tls block through the Admin API (in place, no
    restart: its accepts still hand out io_uring fixed files, which userspace TLS serves),
    then loses it again."""
    z = make_proxy(base_config([listener("web", catch_all("a"))],
                               [cluster("a", backends["a"].addr)]))
    assert httpraw.request(z.port, target="/").status == 200
    with_tls = dict(z.config)
    with_tls["listeners"] = [dict(z.config["listeners"][0])]
    with_tls["listeners"][0]["tls"] = {"certificates": [certs.ecdsa]}
    ctl.ok(z, "config", "apply", _write(tmp_path, with_tls, "tls.yaml"))
    assert wait_until(lambda: curl(z.port, "example.com", "/", cacert=certs.path("ca.pem"))
                      .returncode == 0, 5)
    r = curl(z.port, "example.com", "/echo", cacert=certs.path("ca.pem"))
    assert ["X-Forwarded-Proto", "https"] in json.loads(r.stdout)["headers"]
    ctl.ok(z, "config", "apply", _write(tmp_path, z.config, "plain.yaml"))
    assert wait_until(lambda: httpraw.request(z.port, target="/").status == 200, 5)
    ctl.ok(z, "config", "apply", _write(tmp_path, with_tls, "tls2.yaml"))
    assert wait_until(lambda: curl(z.port, "example.com", "/").returncode == 0, 5)
    # The accepts armed before the changes must still be cancelled by their own user_data
    # at shutdown: otherwise the drain waits out drain_timeout_ms (5 s here).
    t0 = time.monotonic()
    assert z.stop() == 0
    assert time.monotonic() - t0 < 3, "drain took %.1f s" % (time.monotonic() - t0)
