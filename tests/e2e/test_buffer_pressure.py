"""Provided-buffer exhaustion: a multishot receive that ends with ENOBUFS is re-armed,
never treated as a connection error, and counted in /metrics."""

import concurrent.futures
import hashlib

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config
from test_metrics import scrape


def test_tiny_buffer_ring_still_serves_everything(make_proxy, backends):
    # 8 buffers of 4 KiB for the whole worker, 16 concurrent 300 KB downloads: the ring
    # runs dry over and over.
    cfg = base_config([listener("web", catch_all("app"))],
                      [cluster("app", backends["a"].addr)],
                      io_uring={"buf_count": 8, "buf_size": 4096})
    z = make_proxy(cfg)
    n = 300_000
    want = hashlib.sha256(httpraw.pattern(n)).hexdigest()

    def fetch(_):
        r = httpraw.request(z.port, target="/bytes/%d" % n, timeout=20)
        return r.status, hashlib.sha256(r.body).hexdigest()

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(fetch, range(32)))
    assert all(st == 200 and h == want for st, h in results), results
    fams = scrape(z)
    assert fams["zproxy_recv_enobufs_total"].value() > 0
    # Every connection that went dry got its data in the end: no error was counted.
    assert fams["zproxy_errors_total"].value() == 0
