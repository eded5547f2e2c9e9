"""nginx as a second kind of real upstream."""

import hashlib

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config


def test_file_from_nginx_intact(make_proxy, nginx):
    cfg = base_config([listener("web", catch_all("ngx"))],
                      [cluster("ngx", "127.0.0.1:%d" % nginx.port)])
    z = make_proxy(cfg)
    r = httpraw.request(z.port, target="/nginx/file.bin", timeout=10)
    assert r.status == 200
    assert len(r.body) == len(nginx.file_data)
    assert hashlib.sha256(r.body).digest() == hashlib.sha256(nginx.file_data).digest()
    s = httpraw.request(z.port, target="/status")
    assert s.status == 200 and s.body == b"nginx ok\n"
