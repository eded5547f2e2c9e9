"""Load balancing across two backends (a and b)."""

import threading

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config


def _proxy(make_proxy, backends, endpoints, **cluster_kw):
    cfg = base_config([listener("web", catch_all("app"))],
                      [cluster("app", *endpoints, **cluster_kw)])
    return make_proxy(cfg)


def _names(port, n, target="/"):
    out = []
    for _ in range(n):
        r = httpraw.request(port, target=target)
        assert r.status == 200, r
        out.append(r.body.decode().strip().rsplit(" ", 1)[-1])
    return out


def test_round_robin_alternates(make_proxy, backends):
    z = _proxy(make_proxy, backends, [backends["a"].addr, backends["b"].addr], lb="round_robin")
    names = _names(z.port, 20)
    assert all(x != y for x, y in zip(names, names[1:])), names
    assert sorted(set(names)) == ["a", "b"]


def test_weighted_round_robin_1_to_3(make_proxy, backends):
    z = _proxy(make_proxy, backends,
               [{"address": backends["a"].addr, "weight": 1},
                {"address": backends["b"].addr, "weight": 3}], lb="round_robin")
    names = _names(z.port, 20)
    assert names.count("a") == 5 and names.count("b") == 15, names


def test_least_connections_avoids_busy_backend(make_proxy, backends):
    a, b = backends["a"], backends["b"]
    z = _proxy(make_proxy, backends, [a.addr, b.addr], lb="least_connections")
    marks = {n: be.log.mark() for n, be in backends.items()}
    slow = {}

    def run_slow():
        slow["resp"] = httpraw.request(z.port, target="/slow/1000", timeout=10)

    t = threading.Thread(target=run_slow)
    t.start()
    try:
        busy = None
        for _ in range(100):
            for n, be in backends.items():
                if be.log.wait_for_req(marks[n], "/slow/1000", timeout=0.02):
                    busy = n
            if busy:
                break
        assert busy, "the slow request reached no backend"
        names = _names(z.port, 4)
        other = "b" if busy == "a" else "a"
        assert names == [other] * 4, "busy=%s, quick requests went to %r" % (busy, names)
    finally:
        t.join(15)
    assert slow["resp"].status == 200
