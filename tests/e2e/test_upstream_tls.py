"""TLS towards upstreams (clusters with tls): nginx serves HTTPS with a CA-signed, an expired,
a self-signed certificate, and one that requires a client certificate; zproxy verifies,
sends SNI, presents its client certificate, and answers 502 naming why it refused."""

import os
import signal
import subprocess

import pytest

import httpraw
import promtext
import yamlgen
from conftest import catch_all, cluster, listener
from procs import base_config, free_port, run_check, start_nginx_http, stop_process
from tlscerts import Certs

FILE_SIZE = 1 << 20


class TlsNginx:
    """nginx with one HTTPS server per certificate case."""

    def __init__(self, d, certs):
        self.dir = d
        os.makedirs(os.path.join(d, "files"), exist_ok=True)
        self.file_data = os.urandom(FILE_SIZE)
        with open(os.path.join(d, "files", "file.bin"), "wb") as f:
            f.write(self.file_data)
        self.ports = {k: free_port() for k in ("good", "expired", "selfsigned", "mtls", "oneshot",
                                               "oneshot12")}
        servers = []
        for name, c in (("good", certs.upstream), ("expired", certs.expired),
                        ("selfsigned", certs.selfsigned), ("mtls", certs.upstream),
                        ("oneshot", certs.upstream), ("oneshot12", certs.upstream)):
            # nginx 1.22's default is TLS 1.0-1.2; allow 1.3 except where 1.2 is the point.
            extra = "ssl_protocols TLSv1.2%s;" % ("" if name == "oneshot12" else " TLSv1.3")
            if name == "mtls":
                extra += " ssl_client_certificate %s; ssl_verify_client on;" % certs.path("ca.pem")
            if name.startswith("oneshot"):  # a new connection per request; sessions resumable
                extra += " keepalive_requests 1; ssl_session_tickets on;"
            servers.append("""
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s; ssl_certificate_key %s; %s
    %s
    location /files/ { root %s; }
    location / { return 200 "%s $ssl_protocol sni=$ssl_server_name client=$ssl_client_s_dn reused=$ssl_session_reused\\n"; }
  }""" % (self.ports[name], c["cert"], c["key"], extra,
         "" if name.startswith("oneshot") else "keepalive_requests 10000;", d, name))
        self.proc = start_nginx_http(d, servers, self.ports.values())

    def addr(self, name):
        return "127.0.0.1:%d" % self.ports[name]

    def stop(self):
        stop_process(self.proc, 5, signal.SIGQUIT)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("ucerts")))


@pytest.fixture(scope="module")
def tls_nginx(certs, tmp_path_factory):
    if subprocess.run(["which", "nginx"], capture_output=True).returncode != 0:
        pytest.skip("nginx not installed")
    n = TlsNginx(str(tmp_path_factory.mktemp("tlsnginx")), certs)
    yield n
    n.stop()


def tls_cluster(name, addr, **tls):
    c = cluster(name, addr)
    c["tls"] = tls
    return c


def metrics(z):
    return promtext.parse(httpraw.request(z.metrics_port, target="/metrics").body.decode())


def get(z, route, target="/", timeout=10):
    return httpraw.request(z.port, target="/%s%s" % (route, target), timeout=timeout)


@pytest.fixture(scope="module")
def proxy(tls_nginx, certs, tmp_path_factory):
    """One listener, a route prefix per upstream case (/NAME/... -> cluster NAME)."""
    from conftest import _finish, _live_proxies
    from procs import Zproxy
    ca = certs.path("ca.pem")
    clusters = [
        tls_cluster("good", tls_nginx.addr("good"), ca=ca, sni="upstream.test"),
        tls_cluster("expired", tls_nginx.addr("expired"), ca=ca, sni="upstream.test"),
        tls_cluster("untrusted", tls_nginx.addr("selfsigned"), ca=ca, sni="upstream.test"),
        tls_cluster("wrongname", tls_nginx.addr("good"), ca=ca, sni="other.test"),
        tls_cluster("noverify", tls_nginx.addr("selfsigned"), verify=False),
        tls_cluster("mtls", tls_nginx.addr("mtls"), ca=ca, sni="upstream.test",
                    cert=certs.client["cert"], key=certs.client["key"]),
        tls_cluster("nocert", tls_nginx.addr("mtls"), ca=ca, sni="upstream.test"),
        tls_cluster("oneshot", tls_nginx.addr("oneshot"), ca=ca, sni="upstream.test"),
        tls_cluster("oneshot12", tls_nginx.addr("oneshot12"), ca=ca, sni="upstream.test"),
    ]
    routes = [{"match": {"prefix": "/%s/" % c["name"]}, "cluster": c["name"]} for c in clusters]
    routes.append({"match": {"prefix": "/files/"}, "cluster": "good"})
    cfg = base_config([listener("web", routes)], clusters)
    z = Zproxy(cfg, str(tmp_path_factory.mktemp("uproxy")), name="utls")
    _live_proxies.append(z)
    yield z

    class _Req:
        node = None
    _finish(z, _Req())


def test_verified_upstream_with_sni_and_keepalive(proxy):
    for _ in range(3):
        r = get(proxy, "good")
        assert r.status == 200, r
        assert r.text.startswith("good TLSv1.") and "sni=upstream.test" in r.text, r.text
    m = metrics(proxy)
    assert m["zproxy_upstream_reused_total"].value() >= 2  # TLS connections are pooled


def test_large_download_through_upstream_tls(proxy, tls_nginx):
    for _ in range(2):  # a fresh and a pooled connection
        r = httpraw.request(proxy.port, target="/files/file.bin", timeout=30)
        assert r.status == 200 and r.body == tls_nginx.file_data


@pytest.mark.parametrize("route,cause,words", [
    ("expired", "upstream_tls_expired", "expired"),
    ("untrusted", "upstream_tls_untrusted", "not signed by the cluster's ca"),
    ("wrongname", "upstream_tls_name", "not valid for the cluster's sni"),
])
def test_bad_upstream_certificate_is_a_502_naming_the_cause(proxy, route, cause, words):
    before = metrics(proxy)["zproxy_errors_total"].value(cause=cause)
    r = get(proxy, route)
    assert r.status == 502, r
    assert "upstream TLS certificate rejected" in r.text and words in r.text, r.text
    assert metrics(proxy)["zproxy_errors_total"].value(cause=cause) > before


@pytest.mark.parametrize("route,version", [("oneshot", "TLSv1.3"), ("oneshot12", "TLSv1.2")])
def test_new_upstream_connections_resume_the_session(proxy, route, version):
    """nginx closes after every response here: each request is a new upstream connection,
    and all but the first resume the session the endpoint issued (TLS 1.3 PSK from a
    NewSessionTicket after the handshake; TLS 1.2 ticket in the handshake)."""
    texts = [get(proxy, route).text for _ in range(4)]
    assert all(t.startswith("%s %s" % (route, version)) for t in texts), texts
    assert "reused=." in texts[0], texts
    assert all("reused=r" in t for t in texts[1:]), texts


def test_verify_false_accepts_any_certificate(proxy):
    r = get(proxy, "noverify")
    assert r.status == 200 and r.text.startswith("selfsigned"), r.text


def test_client_certificate(proxy):
    r = get(proxy, "mtls")
    assert r.status == 200 and "client=CN=client.test" in r.text, r.text
    r = get(proxy, "nocert")  # nginx refuses the request without a client certificate
    assert r.status == 400, r


def _write(tmp_path, cfg):
    p = tmp_path / "c.yaml"
    p.write_text(yamlgen.dump(cfg))
    return str(p)


@pytest.mark.parametrize("tls,field,why", [
    ({"sni": "x.test"}, "clusters[0].tls.ca", "CA file"),
    ({"ca": "/nonexistent/ca.pem"}, "clusters[0].tls.ca", "cannot read"),
    ({"verify": False, "cert": "CERT"}, "clusters[0].tls.key", "both cert and key"),
    ({"verify": False, "min_version": "TLS1_1"}, "clusters[0].tls.min_version", "TLS1_2"),
])
def test_check_rejects_bad_cluster_tls(certs, tmp_path, tls, field, why):
    tls = dict(tls)
    if tls.get("cert") == "CERT":
        tls["cert"] = certs.client["cert"]
    cfg = base_config([listener("web", catch_all("a"))], [tls_cluster("a", "127.0.0.1:1", **tls)],
                      admin_address="unix:/tmp/zp-check/admin.sock")
    r = run_check(_write(tmp_path, cfg))
    assert r.returncode == 1 and field in r.stderr and why in r.stderr, r.stderr
