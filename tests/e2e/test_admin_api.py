"""Admin API end to end: changes through zproxyctl are served, refused changes leave the old
config serving, compare-and-set, persistence across zproxyd restarts, socket permissions,
graceful data plane handover under load, and change-to-served latency."""

import os
import re
import shutil
import stat
import statistics
import subprocess
import tempfile
import time

import pytest

import httpraw
from conftest import catch_all, cluster, listener
from ctl import ok, run, jsonout, version
from procs import base_config, wait_until


def _cfg(a, tmp_path, **top):
    top.setdefault("state_dir", str(tmp_path / "state"))
    return base_config([listener("web", catch_all("a"))], [cluster("a", a.addr)], **top)


def _body(z, target, host="test.local"):
    try:
        r = httpraw.request(z.port, target=target, host=host, timeout=0.5)
        return r.status, r.body.decode("utf-8", "replace")
    except (OSError, httpraw.ConnectionClosed) as e:
        return None, str(e)


def _served_by(z, target, name):
    status, body = _body(z, target)
    return status == 200 and ("from %s" % name) in body


def _add_b_route(z, b, prefix="/p/"):
    ok(z, "clusters", "add", "b", "--endpoint", b.addr)
    ok(z, "routes", "add", "--listener", "web", "--prefix", prefix, "--cluster", "b")


def test_route_added_with_zproxyctl_is_served(make_proxy, backends, tmp_path):
    a, b = backends["a"], backends["b"]
    z = make_proxy(_cfg(a, tmp_path))
    assert _served_by(z, "/p/x", "a")
    _add_b_route(z, b)
    # The call returns once the new data plane serves; the old one may still accept a few
    # connections until it has processed its SIGTERM (milliseconds: see the latency test).
    assert wait_until(lambda: _served_by(z, "/p/x", "b"), 2, 0.005), _body(z, "/p/x")
    assert wait_until(lambda: _served_by(z, "/other", "a"), 5, 0.01)
    routes = jsonout(z, "routes", "list")["listeners"][0]["routes"]
    assert [r["match"].get("prefix") for r in routes] == ["/p/", "/"]


def test_invalid_change_is_rejected_naming_the_field(make_proxy, backends, tmp_path):
    a = backends["a"]
    z = make_proxy(_cfg(a, tmp_path))
    v = version(z)
    r = run(z, "routes", "add", "--listener", "web", "--prefix", "nope", "--cluster", "missing")
    assert r.returncode == 1
    assert "listeners[0].routes[1].match.prefix: must start with '/'" in r.stderr, r.stderr
    assert 'listeners[0].routes[1].cluster: unknown cluster "missing"' in r.stderr, r.stderr
    assert version(z) == v
    assert _served_by(z, "/", "a")


def test_stale_compare_and_set_is_rejected(make_proxy, backends, tmp_path):
    a, b = backends["a"], backends["b"]
    z = make_proxy(_cfg(a, tmp_path))
    v = version(z)
    ok(z, "clusters", "add", "b", "--endpoint", b.addr, "--expected-version", v)
    r = run(z, "routes", "add", "--listener", "web", "--prefix", "/p/", "--cluster", "b",
            "--expected-version", v)
    assert r.returncode == 1
    assert "current config version is %d" % (v + 1) in r.stderr, r.stderr
    assert version(z) == v + 1
    assert wait_until(lambda: _served_by(z, "/p/x", "a"), 5, 0.01)


def test_dynamic_route_survives_zproxyd_restart(make_proxy, backends, tmp_path):
    a, b = backends["a"], backends["b"]
    z = make_proxy(_cfg(a, tmp_path))
    _add_b_route(z, b)
    v = version(z)
    assert z.stop() == 0
    z.start()
    assert wait_until(lambda: _served_by(z, "/p/x", "b"), 5, 0.01)
    st = jsonout(z, "status")
    assert st["config_source"] == "state" and int(st["config_version"]) == v
    assert "using the state saved in" in z.stderr()


def test_edited_file_wins_over_saved_state(make_proxy, backends, tmp_path):
    a, b = backends["a"], backends["b"]
    z = make_proxy(_cfg(a, tmp_path))
    _add_b_route(z, b)
    v = version(z)
    assert z.stop() == 0
    with open(z.config_path, "a") as f:
        f.write("# edited\n")
    z.start()
    assert wait_until(lambda: _served_by(z, "/p/x", "a"), 5, 0.01)
    assert version(z) == v + 1  # versions keep growing across the replacement
    assert "the file wins" in z.stderr()


def test_admin_socket_is_0600_and_refuses_other_users(make_proxy, backends, tmp_path):
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser")
    a = backends["a"]
    # A world-traversable directory, so only the socket's own mode protects it.
    d = tempfile.mkdtemp(prefix="zpa-")
    os.chmod(d, 0o755)
    try:
        z = make_proxy(_cfg(a, tmp_path, admin_address="unix:%s/run/admin.sock" % d))
        path = "%s/run/admin.sock" % d
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert stat.S_ISSOCK(os.stat(path).st_mode) and mode == 0o600, oct(mode)
        probe = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\n"
                 "try:\n s.connect(sys.argv[1]); print('connected')\n"
                 "except OSError as e: print('refused', e.errno)\n")
        r = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe, path],
                           capture_output=True, text=True, timeout=10)
        assert r.stdout.startswith("refused 13"), r.stdout + r.stderr  # EACCES
        ok(z, "status")  # root still can
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _wrk(port, seconds=3):
    return subprocess.Popen(["wrk", "-t1", "-c20", "-d%ds" % seconds, "http://127.0.0.1:%d/" % port],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_dataplane_restart_under_load_fails_nothing(make_proxy, backends, tmp_path):
    a = backends["a"]
    z = make_proxy(_cfg(a, tmp_path))
    pid = jsonout(z, "status")["dataplane_pid"]
    w = _wrk(z.port)
    time.sleep(0.7)
    ok(z, "dataplane", "restart")
    time.sleep(0.7)
    ok(z, "dataplane", "restart")
    out = w.communicate(timeout=30)[0]
    print(out)
    assert "Socket errors" not in out, out
    assert "Non-2xx" not in out, out
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    assert reqs > 100, out
    st = jsonout(z, "status")
    assert st["dataplane_pid"] != pid and st["handovers"] == 2


def test_plaintext_tcp_admin_is_refused(backends, tmp_path):
    import yamlgen
    from procs import run_check
    cfg = _cfg(backends["a"], tmp_path, admin_address="127.0.0.1:9999")
    cfg["listeners"][0]["address"] = "127.0.0.1:18081"
    path = tmp_path / "tcp.yaml"
    path.write_text(yamlgen.dump(cfg))
    r = run_check(str(path))
    assert r.returncode == 1
    assert "admin_tls: TCP admin_address \"127.0.0.1:9999\" needs admin_tls" in r.stderr, r.stderr
