"""Outlier ejection periods double per ejection up to `max_ejection_ms` (docs/configuration.md,
clusters: "ejection period, doubling per ejection" / "cap"). An endpoint that keeps failing
(nothing listens: connect refused, each request retried on the live endpoint) is ejected for
base, 2 x base, 4 x base capped at max, then max again. Checked twice: the period zproxy logs
("ejecting app endpoint E for N ms"), and the period observed from outside as the time the
`zproxy_upstream_ejected` gauge stays 1 (the data plane ends ejections on its 50 ms tick).
"""

import re
import time

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config, free_port
from test_metrics import scrape

BASE_MS, MAX_MS = 400, 1000
EXPECTED = [400, 800, 1000, 1000]  # uncapped it would be 400, 800, 1600, 3200
# Observed period vs nominal: measured from before the failing request, so never shorter
# (but for clock granularity); longer by the request, the tick and the polling.
EARLY, LATE = 0.02, 0.6


def _gauge(z, name):
    return scrape(z)[name].value()


def test_ejection_period_doubles_up_to_max(make_proxy, backends):
    dead = "127.0.0.1:%d" % free_port()
    cfg = base_config(
        [listener("web", catch_all("app"))],
        [cluster("app", backends["a"].addr, dead,
                 outlier_detection={"consecutive_failures": 1, "base_ejection_ms": BASE_MS,
                                    "max_ejection_ms": MAX_MS})])
    z = make_proxy(cfg)
    observed = []
    for n in range(1, len(EXPECTED) + 1):
        # Round robin reaches the dead endpoint within two requests: it fails once and is
        # ejected (the request itself is retried on the live endpoint: clients see 200s).
        for _ in range(4):
            t_ejected = time.monotonic()  # at most the ejection's time: before its request
            assert httpraw.request(z.port).status == 200
            if _gauge(z, "zproxy_upstream_ejections_total") == n:
                break
        assert _gauge(z, "zproxy_upstream_ejections_total") == n, "ejection %d never came" % n
        assert _gauge(z, "zproxy_upstream_ejected") == 1
        deadline = t_ejected + EXPECTED[n - 1] / 1000.0 + LATE + 1.0
        while _gauge(z, "zproxy_upstream_ejected") == 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        observed.append(time.monotonic() - t_ejected)
        assert _gauge(z, "zproxy_upstream_ejected") == 0, \
            "ejection %d still on after %.2f s" % (n, observed[-1])
    logged = [int(ms) for ms in re.findall(
        r"ejecting app endpoint %s for (\d+) ms after 1 consecutive failures" % re.escape(dead),
        z.stderr())]
    assert logged == EXPECTED, "logged ejection periods %r" % logged
    print("observed ejection periods (s):", ["%.3f" % o for o in observed])
    for want_ms, got in zip(EXPECTED, observed):
        assert want_ms / 1000.0 - EARLY <= got <= want_ms / 1000.0 + LATE, \
            "observed periods %s s, expected %s ms" % (["%.2f" % o for o in observed], EXPECTED)
