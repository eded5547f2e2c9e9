"""Route timeouts and retry policies (docs/route-policy.md): retry_on reset / status /
connect_failure / per_try_timeout, num_retries, never a POST once its bytes went upstream,
the cluster's retry budget, timeout_ms; for HTTP/1.1 and HTTP/2 clients."""

import concurrent.futures
import subprocess
import threading
import time

import pytest

import httpraw
import promtext
from conftest import cluster, listener
from procs import base_config, free_port
from scripted_upstream import RESET, Script, ScriptedUpstream, response


def probe(target):
    """The harness's readiness probe goes through the proxy too: answered, not counted."""
    return "__zproxy_e2e_ready" in target


class Counter:
    def __init__(self):
        self.n = 0
        self.lock = threading.Lock()

    def next(self):
        with self.lock:
            self.n += 1
            return self.n


def scrape(z):
    r = httpraw.request(z.metrics_port, target="/metrics")
    assert r.status == 200, r
    return promtext.parse(r.body.decode())


def proxy_for(make_proxy, upstream_addrs, route_extra, **cluster_kw):
    route = {"match": {"prefix": "/"}, "cluster": "up"}
    route.update(route_extra)
    return make_proxy(base_config([listener("web", [route])],
                                  [cluster("up", *upstream_addrs, **cluster_kw)]))


def curl_status(port, path="/", h2=False, method="GET", data=None, timeout=10):
    args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", str(timeout),
            "--http2-prior-knowledge" if h2 else "--http1.1", "-X", method]
    if data is not None:
        args += ["--data-binary", data]
    args.append("http://127.0.0.1:%d%s" % (port, path))
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 5)
    return int(r.stdout or 0)


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
def test_reset_every_second_request_is_invisible_with_retry_on_reset(make_proxy, h2):
    seen = Counter()

    def answer(conn, index, method, target, body):
        if probe(target):
            return response(200, close=True)
        # Every connection serves one request (Connection: close), so the resets land on
        # fresh connections, which zproxy's built-in stale-connection retry leaves alone.
        return Script(RESET) if seen.next() % 2 == 0 else response(200, b"fine\n", close=True)

    up = ScriptedUpstream(answer)
    try:
        z = proxy_for(make_proxy, [up.addr],
                      {"retry": {"retry_on": ["reset"], "num_retries": 2}})
        statuses = [curl_status(z.port, "/r%d" % i, h2=h2) for i in range(30)]
        assert statuses == [200] * 30
        fams = scrape(z)
        assert fams["zproxy_route_retries_total"].value(reason="reset") >= 10
    finally:
        up.close()


def test_without_a_policy_the_reset_reaches_the_client(make_proxy):
    seen = Counter()

    def answer(conn, index, method, target, body):
        if probe(target):
            return response(200, close=True)
        # Every connection serves one request (Connection: close), so the resets land on
        # fresh connections, which zproxy's built-in stale-connection retry leaves alone.
        return Script(RESET) if seen.next() % 2 == 0 else response(200, b"fine\n", close=True)

    up = ScriptedUpstream(answer)
    try:
        z = proxy_for(make_proxy, [up.addr], {})
        statuses = [curl_status(z.port, "/r%d" % i) for i in range(10)]
        assert statuses.count(502) >= 3, statuses  # the test can fail: resets are seen
    finally:
        up.close()


def test_post_is_not_retried_once_sent(make_proxy):
    seen = Counter()

    def answer(conn, index, method, target, body):
        if probe(target):
            return response(200, close=True)
        seen.next()
        return Script(RESET)

    up = ScriptedUpstream(answer)
    try:
        z = proxy_for(make_proxy, [up.addr],
                      {"retry": {"retry_on": ["reset", "5xx"], "num_retries": 3}})
        assert curl_status(z.port, "/submit", method="POST", data="x=1") == 502
        assert seen.n == 1
        # GET to the same route is retried (3 times, then the reset is answered 502).
        assert curl_status(z.port, "/read") == 502
        assert seen.n == 1 + 4
    finally:
        up.close()


def test_retry_non_idempotent_allows_a_post_without_body(make_proxy):
    seen = Counter()

    def answer(conn, index, method, target, body):
        if probe(target):
            return response(200, close=True)
        return Script(RESET) if seen.next() == 1 else response(200)

    up = ScriptedUpstream(answer)
    try:
        z = proxy_for(make_proxy, [up.addr], {"retry": {
            "retry_on": ["reset"], "num_retries": 1, "retry_non_idempotent": True}})
        r = httpraw.request(z.port, "POST", "/no-body")
        assert r.status == 200 and seen.n == 2
    finally:
        up.close()


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
def test_retriable_status_is_retried_and_others_are_not(make_proxy, h2):
    seen = Counter()

    def answer(conn, index, method, target, body):
        if probe(target):
            return response(200, close=True)
        n = seen.next()
        if target.startswith("/flaky"):
            return response(503, b"busy\n") if n % 2 == 1 else response(200, b"ok\n")
        return response(500, b"broken\n")

    up = ScriptedUpstream(answer)
    try:
        z = proxy_for(make_proxy, [up.addr], {"retry": {"retry_on": ["503"], "num_retries": 1}})
        assert curl_status(z.port, "/flaky", h2=h2) == 200
        assert seen.n == 2
        assert curl_status(z.port, "/other", h2=h2) == 500  # 500 is not on the list
        assert seen.n == 3
        assert scrape(z)["zproxy_route_retries_total"].value(reason="status") == 1
    finally:
        up.close()


def test_connect_failure_retries_other_endpoints(make_proxy, backends):
    dead = ["127.0.0.1:%d" % free_port() for _ in range(2)]
    z = proxy_for(make_proxy, dead + [backends["a"].addr],
                  {"retry": {"retry_on": ["connect_failure"], "num_retries": 3,
                             "base_interval_ms": 1}},
                  outlier_detection={"disable": True})
    for i in range(12):
        assert curl_status(z.port, "/c%d" % i) == 200


def test_per_try_timeout_retries_a_slow_try(make_proxy):
    seen = Counter()

    def answer(conn, index, method, target, body):
        if probe(target):
            return response(200, close=True)
        if seen.next() == 1:
            return Script(3.0, response(200, b"late\n"))
        return response(200, b"quick\n")

    up = ScriptedUpstream(answer)
    try:
        z = proxy_for(make_proxy, [up.addr], {"retry": {
            "retry_on": ["per_try_timeout"], "num_retries": 1, "per_try_timeout_ms": 300}})
        start = time.monotonic()
        r = httpraw.request(z.port, target="/slow-then-quick")
        took = time.monotonic() - start
        assert r.status == 200 and r.body == b"quick\n"
        assert 0.25 < took < 2.0, took
    finally:
        up.close()


@pytest.mark.parametrize("h2", [False, True], ids=["h1", "h2"])
def test_route_timeout_is_504(make_proxy, h2):
    def answer(conn, index, method, target, body):
        if probe(target):
            return response(200, close=True)
        return Script(3.0, response(200))

    up = ScriptedUpstream(answer)
    try:
        z = proxy_for(make_proxy, [up.addr], {"timeout_ms": 400})
        start = time.monotonic()
        assert curl_status(z.port, "/slow", h2=h2) == 504
        took = time.monotonic() - start
        assert 0.35 < took < 1.5, took
        fams = scrape(z)
        assert fams["zproxy_errors_total"].value(cause="route_timeout") == 1
    finally:
        up.close()


def test_retry_budget_caps_retries_when_every_endpoint_fails(make_proxy):
    seen = Counter()

    def answer(conn, index, method, target, body):
        if probe(target):
            return response(200, close=True)
        seen.next()
        return Script(0.3, response(503, b"down\n"))

    up = ScriptedUpstream(answer)
    try:
        z = proxy_for(make_proxy, [up.addr],
                      {"retry": {"retry_on": ["503"], "num_retries": 3, "base_interval_ms": 1}},
                      retry_budget_percent=5, min_retry_concurrency=1, pool_size=64)
        n = 12
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            statuses = list(pool.map(lambda i: curl_status(z.port, "/b%d" % i), range(n)))
        assert statuses == [503] * n
        # Without a budget every request would have been tried 4 times (48); with one retry
        # in flight at a time, far fewer.
        assert n < seen.n < 2 * n + 4, seen.n
        assert scrape(z)["zproxy_retry_budget_exhausted_total"].value() > 0
    finally:
        up.close()
