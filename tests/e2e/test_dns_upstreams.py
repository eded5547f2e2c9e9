"""Cluster endpoints given by host name, resolved by zproxyd (c-ares) against a DNS server
the test controls (fake_dns.py, named in the config's dns.resolvers): every address serves,
records added and removed are followed live without a failed request, TTLs are honoured
within min/max_refresh_ms (queries counted at the server), NXDOMAIN and a server that stops
answering keep the last addresses for stale_ms (then 503), health checks follow the
addresses, an Admin API change to a new name serves at once, and zproxyctl and /metrics
show the names."""

import re
import threading
import time

import pytest

import ctl
import httpraw
from conftest import catch_all, cluster, listener
from fake_dns import FakeDns
from procs import Backend, base_config, wait_until
from test_metrics import scrape

NAME = "app.zproxy.test"


@pytest.fixture
def dns():
    d = FakeDns()
    yield d
    d.close()


@pytest.fixture
def trio(tmp_path):
    """Three test backends on 127.0.0.2-4, one port: what one name's A records point at."""
    first = Backend("d2", str(tmp_path), listen="127.0.0.2:0")
    bs = {"127.0.0.2": first}
    try:
        for ip, name in (("127.0.0.3", "d3"), ("127.0.0.4", "d4")):
            bs[ip] = Backend(name, str(tmp_path), listen="%s:%d" % (ip, first.port))
        yield bs
    finally:
        for b in bs.values():
            b.stop()


def _proxy(make_proxy, dns, port, endpoints=None, cluster_dns=None, health_check=None, **top_dns):
    d = {"resolvers": ["%s:53" % dns.ip], "timeout_ms": 400, "min_refresh_ms": 200}
    d.update(top_dns)
    extra = {}
    if cluster_dns:
        extra["dns"] = cluster_dns
    if health_check:
        extra["health_check"] = health_check
    c = cluster("app", *(endpoints or ["%s:%d" % (NAME, port)]), **extra)
    return make_proxy(base_config([listener("web", catch_all("app"))], [c], dns=d))


def _who(z, timeout=5):
    r = httpraw.request(z.port, timeout=timeout)
    if r.status != 200:
        return r.status
    return r.body.decode().strip().rsplit(" ", 1)[-1]


def _seen(z, n=12):
    return {_who(z) for _ in range(n)}


def _metric(z, family, **labels):
    return scrape(z)[family].value(**labels)


def test_every_address_serves_and_zproxyctl_and_metrics_name_it(make_proxy, dns, trio):
    port = trio["127.0.0.2"].port
    dns.add(NAME, a=["127.0.0.2", "127.0.0.3"], ttl=30)
    z = _proxy(make_proxy, dns, port)
    assert _seen(z) == {"d2", "d3"}
    health = ctl.jsonout(z, "health")
    rows = {e["address"]: e for e in health["endpoints"]}
    assert set(rows) == {"127.0.0.2:%d" % port, "127.0.0.3:%d" % port}, health
    for e in rows.values():
        assert e["hostname"] == "%s:%d" % (NAME, port), e
        assert "2 addresses, TTL 30 s" in e["dns"], e
    table = ctl.ok(z, "clusters", "list").stdout
    assert "%s:%d(w=1)=>127.0.0.2:%d,127.0.0.3:%d" % (NAME, port, port, port) in table, table
    assert _metric(z, "zproxy_upstream_dns_addresses", cluster="app", name=NAME) == 2
    assert _metric(z, "zproxy_upstream_dns_lookups_total", cluster="app", name=NAME, result="ok") >= 1
    # A TTL of 30 s: no second lookup in the meantime.
    assert dns.count(NAME, "A") == 1


def test_records_added_and_removed_are_followed_without_a_failed_request(make_proxy, dns, trio):
    port = trio["127.0.0.2"].port
    dns.add(NAME, a=["127.0.0.2"], ttl=1)
    z = _proxy(make_proxy, dns, port)
    results = []
    stop = threading.Event()

    def load():
        while not stop.is_set():
            results.append(_who(z))

    t = threading.Thread(target=load)
    t.start()
    try:
        assert wait_until(lambda: results and results[-1] == "d2", 5)
        dns.add(NAME, a=["127.0.0.3", "127.0.0.4"], ttl=1)  # moved
        mark = len(results)
        assert wait_until(lambda: set(results[-6:]) == {"d3", "d4"} and len(results) > mark + 6, 6), \
            results[-10:]
        dns.add(NAME, a=["127.0.0.4"], ttl=1)  # one removed
        mark = len(results)
        assert wait_until(lambda: set(results[-6:]) == {"d4"} and len(results) > mark + 6, 6), \
            results[-10:]
    finally:
        stop.set()
        t.join()
    failed = [r for r in results if not isinstance(r, str)]
    assert not failed, "requests failed while the addresses changed: %s" % failed
    assert _metric(z, "zproxy_upstream_dns_changes_total", cluster="app", name=NAME) >= 3


def test_ttl_is_honoured_within_the_refresh_bounds(make_proxy, dns, trio):
    port = trio["127.0.0.2"].port
    # TTL 0 -> min_refresh_ms (1 s): about one lookup a second, not a flood.
    dns.add(NAME, a=["127.0.0.2"], ttl=0)
    z = _proxy(make_proxy, dns, port, min_refresh_ms=1000)
    start = dns.count(NAME, "A")
    time.sleep(3.2)
    n = dns.count(NAME, "A") - start
    assert 2 <= n <= 4, "TTL 0 with min_refresh_ms 1000: %d lookups in 3.2 s" % n
    assert _who(z) == "d2"
    z.stop()
    # TTL one hour, max_refresh_ms 500: looked up again twice a second anyway.
    dns2 = "max.zproxy.test"
    dns.add(dns2, a=["127.0.0.3"], ttl=3600)
    z = _proxy(make_proxy, dns, port, endpoints=["%s:%d" % (dns2, port)],
               cluster_dns={"max_refresh_ms": 500})
    start = dns.count(dns2, "A")
    time.sleep(2.2)
    n = dns.count(dns2, "A") - start
    assert 3 <= n <= 6, "TTL 3600 with max_refresh_ms 500: %d lookups in 2.2 s" % n
    assert _who(z) == "d3"


@pytest.mark.parametrize("failure", ["nxdomain", "silent"])
def test_a_name_that_stops_resolving_keeps_its_addresses_for_stale_ms(make_proxy, dns, trio,
                                                                       failure):
    port = trio["127.0.0.2"].port
    dns.add(NAME, a=["127.0.0.2"], ttl=1)
    z = _proxy(make_proxy, dns, port, stale_ms=2500, failure_refresh_ms=200, min_refresh_ms=200)
    assert _who(z) == "d2"
    if failure == "nxdomain":
        dns.remove(NAME)
        why = "NXDOMAIN"
    else:
        dns.silent = True
        why = "timeout"
    # Failing now, but still served from the last addresses, and said so.
    assert wait_until(lambda: _metric(z, "zproxy_upstream_dns_stale", cluster="app", name=NAME) == 1, 5)
    assert _who(z) == "d2"
    line = why + r".*keeping its last addresses \(127\.0\.0\.2\)"
    assert wait_until(lambda: re.search(line, z.stderr()), 5), z.stderr()[-2000:]
    health = ctl.jsonout(z, "health")
    assert "keeping 1 address (stale)" in health["endpoints"][0]["dns"], health
    # Past stale_ms: no address left, 503; the cluster says why.
    assert wait_until(lambda: _who(z) == 503, 6)
    assert _metric(z, "zproxy_upstream_dns_addresses", cluster="app", name=NAME) == 0
    health = ctl.jsonout(z, "health")
    assert health["endpoints"][0]["address"] == "%s:%d" % (NAME, port), health
    assert not health["endpoints"][0]["healthy"], health
    assert "no addresses" in health["endpoints"][0]["last_check_reason"], health
    # Back: served again.
    dns.silent = False
    dns.add(NAME, a=["127.0.0.3"], ttl=1)
    assert wait_until(lambda: _who(z) == "d3", 5)


def test_health_checks_follow_the_addresses(make_proxy, dns, trio):
    port = trio["127.0.0.2"].port
    # 127.0.0.5 has no backend: its checks fail, and it gets no traffic.
    dns.add(NAME, a=["127.0.0.2", "127.0.0.5"], ttl=1)
    z = _proxy(make_proxy, dns, port, health_check={
        "interval_ms": 200, "timeout_ms": 200, "http_path": "/healthz",
        "healthy_threshold": 1, "unhealthy_threshold": 1})

    def verdicts():
        return {e["address"]: e["healthy"]
                for e in ctl.jsonout(z, "health")["endpoints"]}

    want = {"127.0.0.2:%d" % port: True, "127.0.0.5:%d" % port: False}
    assert wait_until(lambda: verdicts() == want, 5), verdicts()
    assert _seen(z, 8) == {"d2"}
    good = {e["address"]: e for e in ctl.jsonout(z, "health")["endpoints"]}["127.0.0.2:%d" % port]
    # A lookup later (TTL 1 s), the bad address has left the answer: the good one keeps
    # its checker state (same slot, same start), the other is no longer checked.
    dns.add(NAME, a=["127.0.0.2"], ttl=1)
    assert wait_until(lambda: list(verdicts()) == ["127.0.0.2:%d" % port], 5), verdicts()
    now = ctl.jsonout(z, "health")["endpoints"][0]
    assert now["checking_since_unix_ms"] == good["checking_since_unix_ms"], (good, now)
    assert now["healthy"]


def test_admin_api_change_to_a_new_name_serves_at_once(make_proxy, dns, trio):
    port = trio["127.0.0.2"].port
    dns.add(NAME, a=["127.0.0.2"], ttl=30)
    dns.add("other.zproxy.test", a=["127.0.0.4"], ttl=30)
    z = _proxy(make_proxy, dns, port)
    assert _who(z) == "d2"
    ctl.ok(z, "clusters", "add", "app", "--endpoint", "other.zproxy.test:%d" % port)
    # Looked up before the change was pushed: the very next request goes there.
    assert _who(z) == "d4"
    # A name that does not resolve is accepted (it may appear later) and serves nothing yet.
    ctl.ok(z, "clusters", "add", "app", "--endpoint", "later.zproxy.test:%d" % port)
    assert _who(z) == 503
    dns.add("later.zproxy.test", a=["127.0.0.3"], ttl=1)
    assert wait_until(lambda: _who(z) == "d3", 5)
