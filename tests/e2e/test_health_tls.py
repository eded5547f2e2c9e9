"""HTTP health checks of clusters with `tls:` speak TLS with the cluster's own settings (CA,
SNI, verify, client certificate): real nginx HTTPS upstreams, real zproxyd, zproxyctl.

- a healthy endpoint stays in; one answering 500 on the check path goes out (no request
  reaches it) and comes back when it answers 200 again;
- an expired, an untrusted (self-signed) and a wrong-name certificate mark the endpoint
  down with verify on, with the reason in the log and in WatchHealth (zproxyctl);
- an upstream that requires a client certificate is healthy with the cluster's cert, and
  down (HTTP 400 from nginx) without one; verify: false accepts the self-signed one."""

import json
import os
import signal
import subprocess
import time

import pytest

import ctl
import httpraw
import promtext
import yamlgen
from conftest import cluster, listener
from procs import base_config, free_port, start_nginx_http, stop_process, wait_until
from tlscerts import Certs

HEALTH = {"interval_ms": 200, "http_path": "/healthz", "timeout_ms": 1000,
          "healthy_threshold": 1, "unhealthy_threshold": 2}


class HealthNginx:
    """nginx, one HTTPS server per case. /healthz answers 200 only with SNI and Host
    upstream.test (421/400 otherwise), and 500 while the file <dir>/NAME.down exists; / names
    the server."""

    def __init__(self, d, certs):
        self.dir = d
        cases = {"a": certs.upstream, "b": certs.upstream, "expired": certs.expired,
                 "selfsigned": certs.selfsigned, "mtls": certs.upstream}
        self.ports = {k: free_port() for k in cases}
        servers = []
        for name, c in cases.items():
            extra = ""
            if name == "mtls":
                extra = "ssl_client_certificate %s; ssl_verify_client on;" % certs.path("ca.pem")
            servers.append("""
  server {
    listen 127.0.0.1:%(port)d ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate %(cert)s; ssl_certificate_key %(key)s; %(extra)s
    location = /healthz {
      if ($ssl_server_name != "upstream.test") { return 421 "sni $ssl_server_name\\n"; }
      if ($http_host != "upstream.test") { return 400 "host $http_host\\n"; }
      if (-f %(dir)s/%(name)s.down) { return 500 "down\\n"; }
      return 200 "ok\\n";
    }
    location / { return 200 "served by %(name)s\\n"; }
  }""" % {"port": self.ports[name], "cert": c["cert"], "key": c["key"], "extra": extra,
          "dir": d, "name": name})
        self.proc = start_nginx_http(d, servers, self.ports.values())

    def addr(self, name):
        return "127.0.0.1:%d" % self.ports[name]

    def set_down(self, name, down):
        p = os.path.join(self.dir, name + ".down")
        if down:
            open(p, "w").close()
        elif os.path.exists(p):
            os.unlink(p)

    def stop(self):
        stop_process(self.proc, 5, signal.SIGQUIT)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs(str(tmp_path_factory.mktemp("hcerts")))


@pytest.fixture(scope="module")
def nginx(certs, tmp_path_factory):
    if subprocess.run(["which", "nginx"], capture_output=True).returncode != 0:
        pytest.skip("nginx not installed")
    n = HealthNginx(str(tmp_path_factory.mktemp("hnginx")), certs)
    yield n
    n.stop()


def tls_cluster(name, endpoints, health=HEALTH, **tls):
    c = cluster(name, *endpoints, health_check=dict(health))
    c["tls"] = tls
    return c


def gauges(z):
    """{(cluster, endpoint): 0/1} from zproxy_upstream_healthy."""
    r = httpraw.request(z.metrics_port, target="/metrics")
    fam = promtext.parse(r.body.decode())["zproxy_upstream_healthy"]
    return {(l["cluster"], l["endpoint"]): v for _, l, v in fam.samples}


def wait_gauge(z, key, value, timeout=5.0):
    ok = wait_until(lambda: gauges(z).get(key) == value, timeout, 0.02)
    assert ok, "%s not %s within %.1fs: %r\n%s" % (key, value, timeout, gauges(z),
                                                  z.stderr()[-3000:])


class Watcher:
    """`zproxyctl -o json health watch` in the background; events() parses what it printed."""

    def __init__(self, z, tmp_path):
        self.out_path = str(tmp_path / "watch.jsonl")
        self.proc = subprocess.Popen([ctl.zproxyctl_path(), "--admin", ctl.admin(z), "-o", "json",
                                      "health", "watch"],
                                     stdout=open(self.out_path, "w"), stderr=subprocess.PIPE)
        time.sleep(0.5)  # subscribed before anything changes
        assert self.proc.poll() is None, self.proc.stderr.read()

    def events(self):
        with open(self.out_path) as f:
            return [json.loads(l) for l in f if l.strip()]

    def wait_event(self, cluster, address, healthy, timeout=5.0):
        def find():
            for e in self.events():
                if (e.get("cluster") == cluster and e.get("address") == address and
                        bool(e.get("healthy", False)) == healthy):
                    return e
            return None
        e = wait_until(find, timeout, 0.05)
        assert e, "no %s event for %s %s: %r" % (healthy, cluster, address, self.events())
        return e

    def stop(self):
        self.proc.kill()
        self.proc.wait(5)


def test_https_check_takes_a_500_out_and_brings_it_back(make_proxy, nginx, certs, tmp_path):
    a, b = nginx.addr("a"), nginx.addr("b")
    cfg = base_config([listener("web", [{"match": {"prefix": "/"}, "cluster": "app"}])],
                      [tls_cluster("app", [a, b], ca=certs.path("ca.pem"), sni="upstream.test")])
    nginx.set_down("b", False)
    z = make_proxy(cfg)
    watch = Watcher(z, tmp_path)
    try:
        time.sleep(0.6)  # several checks, all passing (SNI and Host checked by nginx)
        assert gauges(z) == {("app", a): 1, ("app", b): 1}
        bodies = {httpraw.request(z.port).body for _ in range(6)}
        assert bodies == {b"served by a\n", b"served by b\n"}

        nginx.set_down("b", True)
        wait_gauge(z, ("app", b), 0)
        e = watch.wait_event("app", b, False)
        assert "HTTP 500" in e["reason"], e
        assert "endpoint %s is now unhealthy: HTTP 500" % b in z.stderr()
        assert gauges(z)[("app", a)] == 1
        for i in range(30):
            r = httpraw.request(z.port)
            assert r.status == 200 and r.body == b"served by a\n", (i, r, r.body)

        nginx.set_down("b", False)
        wait_gauge(z, ("app", b), 1)
        e = watch.wait_event("app", b, True)
        assert "HTTP 200" in e["reason"], e
        bodies = [httpraw.request(z.port).body for _ in range(10)]
        assert bodies.count(b"served by b\n") >= 3, bodies
    finally:
        watch.stop()
        nginx.set_down("b", False)


def test_bad_certificates_and_client_certificates(make_proxy, nginx, certs, tmp_path):
    ca = certs.path("ca.pem")
    good = tls_cluster("good", [nginx.addr("a")], ca=ca, sni="upstream.test")
    cfg = base_config([listener("web", [{"match": {"prefix": "/"}, "cluster": "good"}])], [good])
    z = make_proxy(cfg)
    watch = Watcher(z, tmp_path)
    try:
        # Added through the Admin API while WatchHealth is open: every transition is seen.
        cases = [
            tls_cluster("expired", [nginx.addr("expired")], ca=ca, sni="upstream.test"),
            tls_cluster("untrusted", [nginx.addr("selfsigned")], ca=ca, sni="upstream.test"),
            tls_cluster("wrongname", [nginx.addr("a")], ca=ca, sni="other.test"),
            tls_cluster("nocert", [nginx.addr("mtls")], ca=ca, sni="upstream.test"),
            tls_cluster("mtls", [nginx.addr("mtls")], ca=ca, sni="upstream.test",
                        cert=certs.client["cert"], key=certs.client["key"]),
            tls_cluster("noverify", [nginx.addr("selfsigned")], sni="upstream.test", verify=False),
        ]
        new = dict(z.config)
        new["clusters"] = [good] + cases
        new["listeners"] = [dict(z.config["listeners"][0], routes=[
            {"match": {"prefix": "/%s/" % c["name"]}, "cluster": c["name"]} for c in cases] +
            [{"match": {"prefix": "/"}, "cluster": "good"}])]
        path = tmp_path / "more.yaml"
        path.write_text(yamlgen.dump(new))
        ctl.ok(z, "config", "apply", str(path), "--expected-version", ctl.version(z))

        want = {
            "expired": "TLS handshake failed: certificate expired",
            "untrusted": "TLS handshake failed: certificate untrusted",
            "wrongname": "TLS handshake failed: certificate name mismatch",
            # nginx completes the handshake and refuses the request itself.
            "nocert": "HTTP 400",
        }
        for name, words in want.items():
            addr = next(c["endpoints"][0] for c in cases if c["name"] == name)
            wait_gauge(z, (name, addr), 0)
            e = watch.wait_event(name, addr, False)
            assert words in e["reason"], (name, e)
            line = 'cluster "%s" endpoint %s is now unhealthy: %s' % (name, addr, words)
            assert line in z.stderr(), (line, z.stderr()[-3000:])
            r = httpraw.request(z.port, target="/%s/x" % name)
            assert r.status == 503 and b"no healthy upstream" in r.body, (name, r)

        # Still healthy after many checks: the client certificate and verify: false work.
        time.sleep(0.6)
        g = gauges(z)
        assert g[("mtls", nginx.addr("mtls"))] == 1, g
        assert g[("noverify", nginx.addr("selfsigned"))] == 1, g
        assert g[("good", nginx.addr("a"))] == 1, g
        assert not [e for e in watch.events() if e["cluster"] in ("mtls", "noverify", "good")]
        r = httpraw.request(z.port, target="/mtls/x")
        assert r.status == 200 and r.body == b"served by mtls\n", r
    finally:
        watch.stop()
