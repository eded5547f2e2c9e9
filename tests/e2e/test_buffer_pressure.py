"""Provided-buffer exhaustion: a multishot receive that ends with ENOBUFS is re-armed,
never treated as a connection error, and counted in /metrics."""

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
    results = httpraw.fetch_bytes_concurrently(z.port, 300_000, count=32, threads=16)
    assert all(st == 200 and intact for st, intact in results), results
    fams = scrape(z)
    assert fams["zproxy_recv_enobufs_total"].value() > 0
    # Every connection that went dry got its data in the end: no error was counted.
    assert fams["zproxy_errors_total"].value() == 0
