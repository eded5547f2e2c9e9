"""The current health of every endpoint: the Admin API's GetHealth through `zproxyctl health`
(table and -o json), `clusters list`'s health summary and `health watch --initial-state`,
against a real zproxyd, real backends killed and restarted in place (test_health's
KillableBackend) and real nginx HTTPS upstreams with an expired certificate (test_health_tls's
fixtures)."""

import subprocess
import time

import ctl
import httpraw
from conftest import cluster, listener
from procs import base_config, wait_until
from test_health import HEALTH, KillableBackend
# Module-scoped fixtures of the TLS health tests (nginx with good and expired certificates).
from test_health_tls import certs, nginx, tls_cluster  # noqa: F401


def health(z, *args):
    return ctl.jsonout(z, "health", *args)


def by_address(h, cluster_name):
    return {e["address"]: e for e in h["endpoints"] if e["cluster"] == cluster_name}


def wait_endpoint(z, cluster_name, address, pred, timeout=5.0):
    """The endpoint's GetHealth entry once `pred(entry)` holds (fails after `timeout`)."""
    last = {}

    def check():
        last["h"] = by_address(health(z), cluster_name).get(address)
        return last["h"] if last["h"] is not None and pred(last["h"]) else None
    e = wait_until(check, timeout, 0.05)
    assert e, "%s %s: condition not met within %.1fs: %r" % (cluster_name, address, timeout,
                                                             last.get("h"))
    return e


def now_ms():
    return int(time.time() * 1000)


def rows(table):
    """Table lines split on runs of 2+ spaces (cells may contain single spaces)."""
    import re
    return [re.split(r"\s{2,}", l.strip()) for l in table.splitlines() if l.strip()]


def _proxy(make_proxy, checked, unchecked):
    cfg = base_config([listener("web", [{"match": {"prefix": "/"}, "cluster": "app"}])],
                      [cluster("app", *checked, health_check=dict(HEALTH)),
                       cluster("static", *unchecked)])
    return make_proxy(cfg)


def test_kill_and_restart_seen_in_health_and_clusters_list(make_proxy, tmp_path):
    a = KillableBackend("hv-a", str(tmp_path))
    b = KillableBackend("hv-b", str(tmp_path))
    try:
        started = now_ms()
        z = _proxy(make_proxy, [a.addr, b.addr], [a.addr])

        # At start every endpoint is healthy; the checked ones say so from a passing check.
        for addr in (a.addr, b.addr):
            e = wait_endpoint(z, "app", addr, lambda e: e["last_check_unix_ms"] != "0")
            assert e["healthy"] is True and e["source"] == "HEALTH_SOURCE_ACTIVE_CHECK", e
            assert e["last_check_ok"] is True and e["last_check_reason"] == "HTTP 200", e
            assert e["check"] == "http GET /healthz" and e["weight"] == 1, e
            assert e["last_transition_unix_ms"] == "0", e  # none since checking began
            assert started - 1000 <= int(e["checking_since_unix_ms"]) <= now_ms(), e
            assert e["consecutive_failures"] == 0 and e["consecutive_successes"] >= 1, e
        h = health(z)
        s = by_address(h, "static")[a.addr]
        assert s["healthy"] is True and s["source"] == "HEALTH_SOURCE_NO_CHECK", s
        assert s["check"] == "" and s["last_check_unix_ms"] == "0", s
        assert [e["cluster"] for e in h["endpoints"]] == ["app", "app", "static"]  # config order
        assert abs(int(h["unix_time_ms"]) - now_ms()) < 5000, h
        table = rows(ctl.ok(z, "clusters", "list").stdout)
        assert table[0] == ["CLUSTER", "LB", "ENDPOINTS", "HEALTH"], table
        assert {r[0]: r[-1] for r in table[1:]} == {"app": "2/2 healthy",
                                                    "static": "1/1 healthy"}, table

        killed = now_ms()
        b.kill()
        e = wait_endpoint(z, "app", b.addr, lambda e: e["healthy"] is False)
        assert e["last_check_ok"] is False, e
        assert "connect" in e["last_check_reason"] and "refused" in e["last_check_reason"], e
        assert e["consecutive_failures"] >= HEALTH["unhealthy_threshold"], e
        assert e["consecutive_successes"] == 0, e
        down_at = int(e["last_transition_unix_ms"])
        assert killed <= down_at <= now_ms(), (killed, e)
        assert down_at <= int(e["last_check_unix_ms"]), e
        # The log line says the same thing at the same moment.
        assert "endpoint %s is now unhealthy" % b.addr in z.stderr()
        # The other endpoint carries the traffic, as the verdict says.
        assert by_address(health(z), "app")[a.addr]["healthy"] is True
        assert all(httpraw.request(z.port).body == b"hello from hv-a\n" for _ in range(10))

        out = ctl.ok(z, "health").stdout
        table = rows(out)
        assert table[0] == ["CLUSTER", "ENDPOINT", "STATE", "SINCE", "LAST-CHECK", "REASON"], out
        row = {(r[0], r[1]): r for r in table[1:]}
        down = row[("app", b.addr)]
        assert down[2] == "UNHEALTHY" and down[4].endswith("ago failed"), out
        assert "refused" in down[5], out
        assert row[("app", a.addr)][2] == "healthy" and row[("app", a.addr)][5] == "HTTP 200", out
        assert row[("static", a.addr)][2:] == ["healthy", "-", "-", "no health_check"], out
        # `health show` is the same view (widths may differ: the ages moved on).
        shown = rows(ctl.ok(z, "health", "show").stdout)
        assert shown[0] == table[0] and [r[:3] for r in shown] == [r[:3] for r in table], shown
        table = rows(ctl.ok(z, "clusters", "list").stdout)
        assert {r[0]: r[-1] for r in table[1:]}["app"] == "1/2 healthy", table
        summary = ctl.jsonout(z, "clusters", "list")
        assert [c["name"] for c in summary["clusters"]] == ["app", "static"]  # unchanged fields
        assert summary["health"][0] == {"cluster": "app", "endpoints": 2, "healthy": 1,
                                        "draining": 0}, summary

        b.start()  # same port
        e = wait_endpoint(z, "app", b.addr, lambda e: e["healthy"] is True)
        assert e["last_check_ok"] is True and e["last_check_reason"] == "HTTP 200", e
        assert int(e["last_transition_unix_ms"]) > down_at, (down_at, e)
        assert e["consecutive_failures"] == 0, e

        # Draining is the config's, shown beside the verdict.
        ctl.ok(z, "endpoints", "drain", "app", a.addr)
        e = by_address(health(z, "--cluster", "app"), "app")[a.addr]
        assert e["draining"] is True and e["healthy"] is True, e
        table = rows(ctl.ok(z, "clusters", "list").stdout)
        assert {r[0]: r[-1] for r in table[1:]}["app"] == "2/2 healthy, 1 draining", table
        assert "healthy,draining" in ctl.ok(z, "health", "--cluster", "app").stdout
    finally:
        a.stop()
        b.stop()


def test_one_cluster_and_unknown_cluster(make_proxy, tmp_path):
    a = KillableBackend("hv-c", str(tmp_path))
    try:
        z = _proxy(make_proxy, [a.addr], [a.addr])
        h = health(z, "--cluster", "static")
        assert [e["cluster"] for e in h["endpoints"]] == ["static"], h
        assert [c["cluster"] for c in h["clusters"]] == ["static"], h
        for args in (["health", "--cluster", "nope"], ["health", "show", "--cluster", "nope"],
                     ["-o", "json", "health", "--cluster", "nope"]):
            r = ctl.run(z, *args)
            assert r.returncode == 1, (args, r)
            assert r.stderr == 'cluster "nope" not found\n', (args, r.stderr)
            assert r.stdout == "", (args, r.stdout)
        # Unknown subcommands stay usage errors.
        assert ctl.run(z, "health", "frobnicate").returncode == 2
    finally:
        a.stop()


def test_watch_initial_state_then_transitions(make_proxy, tmp_path):
    a = KillableBackend("hv-d", str(tmp_path))
    b = KillableBackend("hv-e", str(tmp_path))
    watch = None
    try:
        z = _proxy(make_proxy, [a.addr, b.addr], [a.addr])
        wait_endpoint(z, "app", b.addr, lambda e: e["last_check_unix_ms"] != "0")
        b.kill()
        wait_endpoint(z, "app", b.addr, lambda e: e["healthy"] is False)
        out = tmp_path / "watch.txt"
        watch = subprocess.Popen([ctl.zproxyctl_path(), "--admin", ctl.admin(z), "health",
                                  "watch", "--initial-state"], stdout=open(out, "w"),
                                 stderr=subprocess.PIPE, text=True)
        # The current state of both checked endpoints at once (the unchecked one has none).
        lines = lambda: [l.split(" ", 4) for l in out.read_text().splitlines()]
        assert wait_until(lambda: len(lines()) >= 2, 5, 0.05), out.read_text()
        first = {l[2]: l for l in lines()[:2]}
        assert set(first) == {a.addr, b.addr}, lines()
        assert first[a.addr][3] == "healthy" and first[a.addr][4] == "HTTP 200", lines()
        assert first[b.addr][3] == "unhealthy" and "refused" in first[b.addr][4], lines()
        # Then the transitions, as before.
        b.start()
        assert wait_until(lambda: len(lines()) >= 3, 5, 0.05), out.read_text()
        assert lines()[2][2:4] == [b.addr, "healthy"], lines()
    finally:
        if watch is not None:
            watch.kill()
            watch.wait(5)
        a.stop()
        b.stop()


def test_expired_certificate_reason(make_proxy, nginx, certs, tmp_path):  # noqa: F811
    ca = certs.path("ca.pem")
    cfg = base_config(
        [listener("web", [{"match": {"prefix": "/"}, "cluster": "good"}])],
        [tls_cluster("good", [nginx.addr("a")], ca=ca, sni="upstream.test"),
         tls_cluster("expired", [nginx.addr("expired")], ca=ca, sni="upstream.test")])
    z = make_proxy(cfg)
    e = wait_endpoint(z, "expired", nginx.addr("expired"), lambda e: e["healthy"] is False)
    assert e["last_check_reason"].startswith("TLS handshake failed: certificate expired"), e
    assert e["check"] == "https GET /healthz", e
    assert int(e["last_transition_unix_ms"]) > 0, e
    good = by_address(health(z), "good")[nginx.addr("a")]
    assert good["healthy"] is True and good["last_check_reason"] == "HTTP 200", good
    out = ctl.ok(z, "health", "--cluster", "expired").stdout
    row = rows(out)[1]
    assert row[:3] == ["expired", nginx.addr("expired"), "UNHEALTHY"], out
    assert row[5].startswith("TLS handshake failed: certificate expired"), out
    table = rows(ctl.ok(z, "clusters", "list").stdout)
    assert {r[0]: r[-1] for r in table[1:]} == {"good": "1/1 healthy",
                                                "expired": "0/1 healthy"}, table
