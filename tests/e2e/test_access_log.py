"""access_log: one line per response, including zproxy's own answers and aborted ones."""

import re
import time

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config, free_port, wait_until


def _lines(path):
    """The log's lines, without the harness's readiness probes."""
    try:
        with open(path) as f:
            return [l.rstrip("\n") for l in f if "__zproxy_e2e_ready" not in l]
    except FileNotFoundError:
        return []


def test_access_log_lines(make_proxy, backends, tmp_path):
    log = tmp_path / "access.log"
    dead = "127.0.0.1:%d" % free_port()
    web = listener("web", [{"match": {"prefix": "/dead/"}, "cluster": "dead"}] + catch_all("app"))
    cfg = base_config([web], [cluster("app", backends["a"].addr), cluster("dead", dead)],
                      access_log=str(log))
    z = make_proxy(cfg)
    assert httpraw.request(z.port, target="/bytes/1000?x=1").status == 200
    assert httpraw.request(z.port, target="/dead/x").status == 502
    assert httpraw.exchange(z.port, b"GET / HTTP/1.1\r\n\r\n")[0].status == 400  # no Host
    lines = wait_until(lambda: len(_lines(log)) >= 3 and _lines(log), timeout=5)
    assert len(lines) == 3, lines
    ok, dead_line, bad = lines
    f = ok.split(" ")
    assert f[1] == "127.0.0.1"
    assert '"GET /bytes/1000?x=1 HTTP/1.1"' in ok
    # ... status bytes seconds upstream note request_id traceparent
    assert f[-7] == "200" and int(f[-6]) > 1000  # status, bytes incl. head
    assert f[-4] == backends["a"].addr and f[-3] == "-"
    assert re.fullmatch(r"[0-9a-f-]{36}", f[-2]) and f[-1] == "-"  # generated X-Request-Id
    assert '"GET /dead/x HTTP/1.1" 502' in dead_line
    assert dead_line.split(" ")[-4:-2] == [dead, "connect_refused"]
    assert int(dead_line.split(" ")[-6]) > 50  # the 502 response's size
    # A request refused before routing has no request ID yet.
    assert " 400 " in bad and bad.split(" ")[-3:] == ["missing_host", "-", "-"]
