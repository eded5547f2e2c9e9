"""Short wrk runs through the proxy: no errors, no non-2xx."""

import re
import subprocess

from conftest import catch_all, cluster, listener
from procs import base_config


def wrk(port, *args, duration="3s"):
    out = subprocess.run(["wrk", "-t1", "-c50", "-d" + duration, "--timeout", "2s"] + list(args)
                         + ["http://127.0.0.1:%d/" % port],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return parse_wrk(out.stdout)


def parse_wrk(text):
    """{'requests': N, 'non2xx': N, 'errors': {connect,read,write,timeout}}."""
    m = re.search(r"^\s*(\d+) requests in", text, re.M)
    assert m, text
    res = {"requests": int(m.group(1)), "non2xx": 0, "errors": {}, "text": text}
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        res["errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups())))
    return res


def _proxy(make_proxy, backends):
    cfg = base_config([listener("web", catch_all("app"))],
                      [cluster("app", backends["a"].addr, backends["b"].addr, pool_size=64)])
    return make_proxy(cfg)


def test_wrk_keepalive_no_errors(make_proxy, backends):
    z = _proxy(make_proxy, backends)
    r = wrk(z.port)
    assert r["requests"] > 1000, r["text"]
    assert r["non2xx"] == 0 and not any(r["errors"].values()), r["text"]


def test_wrk_connection_close_no_errors(make_proxy, backends):
    z = _proxy(make_proxy, backends)
    r = wrk(z.port, "-H", "Connection: close", duration="2s")
    assert r["requests"] > 100, r["text"]
    assert r["non2xx"] == 0 and not any(r["errors"].values()), r["text"]


def test_parse_wrk_output():
    sample = """Running 3s test @ http://127.0.0.1:1/
  50 requests in 3.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
"""
    r = parse_wrk(sample)
    assert r["requests"] == 50 and r["non2xx"] == 7
    assert r["errors"] == {"connect": 0, "read": 2, "write": 0, "timeout": 1}
