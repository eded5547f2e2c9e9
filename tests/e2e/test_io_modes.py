"""The optional io_uring paths: SQPOLL, SEND_ZC for every body buffer, and SEND_ZC off.
Each must carry bodies intact and report itself in /metrics."""

import pytest

import httpraw
import machine
from conftest import catch_all, cluster, listener
from procs import base_config
from test_metrics import scrape

MODES = {
    "sqpoll": {"sqpoll": True},
    "send_zc_always": {"send_zc_threshold": 1},
    "send_zc_off": {"send_zc_disable": True},
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_bodies_intact_in_mode(make_proxy, backends, mode):
    cfg = base_config([listener("web", catch_all("app"))], [cluster("app", backends["a"].addr)],
                      io_uring=MODES[mode])
    z = make_proxy(cfg)
    n = 2_000_003
    results = httpraw.fetch_bytes_concurrently(z.port, n, count=8, threads=4)
    assert all(st == 200 and intact for st, intact in results), results

    fams = scrape(z)
    info = fams["zproxy_dataplane_info"].samples[0][1]
    zc = fams["zproxy_send_zc_total"].value()
    if mode == "sqpoll":
        assert info["sqpoll"] == "1", info
    elif mode == "send_zc_always":
        if info["send_zc"] != "1":
            machine.fallback("send_zc", "zproxy_dataplane_info{send_zc=%s}" % info["send_zc"])
        assert zc > 0
        assert fams["zproxy_send_zc_bytes_total"].value() >= n
    else:
        assert zc == 0
