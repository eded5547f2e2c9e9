"""Passive outlier detection in the data plane: consecutive failures eject an endpoint
for a period that doubles; the last eligible endpoint is never ejected."""

import time

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config, free_port
from test_metrics import scrape


def _metric(z, name):
    return scrape(z)[name].value()


def test_dead_endpoint_ejected_then_retried_after_period(make_proxy, backends):
    dead = "127.0.0.1:%d" % free_port()  # nothing listens: connect refused
    cfg = base_config(
        [listener("web", catch_all("app"))],
        [cluster("app", backends["a"].addr, dead,
                 outlier_detection={"consecutive_failures": 2, "base_ejection_ms": 1500})])
    z = make_proxy(cfg)
    # Round robin sends every other request to the dead endpoint; each such request is
    # retried on the live one, so clients see only 200s.
    for _ in range(6):
        assert httpraw.request(z.port).status == 200
    assert _metric(z, "zproxy_upstream_ejections_total") == 1
    assert _metric(z, "zproxy_upstream_ejected") == 1
    retries = _metric(z, "zproxy_upstream_retries_total")
    # While ejected, the dead endpoint is not tried at all.
    for _ in range(20):
        assert httpraw.request(z.port).status == 200
    assert _metric(z, "zproxy_upstream_retries_total") == retries
    # After the period it is tried again, fails twice more and is ejected again.
    time.sleep(1.7)
    assert _metric(z, "zproxy_upstream_ejected") == 0
    for _ in range(6):
        assert httpraw.request(z.port).status == 200
    assert _metric(z, "zproxy_upstream_retries_total") > retries
    assert _metric(z, "zproxy_upstream_ejections_total") == 2


def test_last_endpoint_is_never_ejected(make_proxy, backends):
    cfg = base_config(
        [listener("web", catch_all("app"))],
        [cluster("app", backends["a"].addr, outlier_detection={"consecutive_failures": 2})])
    z = make_proxy(cfg)
    for _ in range(10):
        r = httpraw.request(z.port, target="/status/500")
        assert r.status == 500  # the upstream's own answer, not a proxy 503
    assert _metric(z, "zproxy_upstream_ejections_total") == 0
