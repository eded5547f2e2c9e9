"""zproxyctl's command forms, output formats and exit codes."""

import json
import subprocess

from conftest import catch_all, cluster, listener
from ctl import jsonout, ok, run, version, zproxyctl_path
from procs import base_config, wait_until
import httpraw


def _status(z, target):
    try:
        return httpraw.request(z.port, target=target, timeout=0.5).status
    except (OSError, httpraw.ConnectionClosed):
        return None


def _cfg(a, tmp_path):
    return base_config([listener("web", catch_all("a"))], [cluster("a", a.addr)],
                       state_dir=str(tmp_path / "state"))


def test_clusters_and_endpoints(make_proxy, backends, tmp_path):
    a, b = backends["a"], backends["b"]
    z = make_proxy(_cfg(a, tmp_path))
    r = ok(z, "clusters", "add", "pool", "--endpoint", a.addr, "--endpoint", b.addr,
           "--lb", "least_connections")
    assert r.stdout.startswith("ok: config version ")
    table = ok(z, "clusters", "list").stdout
    # The existing columns keep their place and meaning; HEALTH (GetHealth) was appended.
    assert table.splitlines()[0].split() == ["CLUSTER", "LB", "ENDPOINTS", "HEALTH"]
    assert "least_connections" in table and a.addr + "(w=1)" in table
    ok(z, "endpoints", "set-weight", "pool", b.addr, "5")
    ok(z, "endpoints", "drain", "pool", a.addr)
    eps = [c for c in jsonout(z, "clusters", "list")["clusters"] if c["name"] == "pool"][0]["endpoints"]
    assert eps[0].get("draining") is True and eps[1]["weight"] == 5
    r = run(z, "endpoints", "drain", "pool", b.addr)
    assert r.returncode == 1 and "keep at least one serving" in r.stderr
    ok(z, "endpoints", "drain", "pool", a.addr, "--undrain")
    ok(z, "routes", "add", "--listener", "web", "--prefix", "/pool/", "--cluster", "pool",
       "--name", "pool-route")
    r = run(z, "clusters", "delete", "pool")
    assert r.returncode == 1
    assert 'listeners[0].routes[0] (listener "web", route "pool-route")' in r.stderr, r.stderr
    ok(z, "routes", "delete", "--listener", "web", "--name", "pool-route")
    ok(z, "clusters", "delete", "pool")
    assert [c["name"] for c in jsonout(z, "clusters", "list")["clusters"]] == ["a"]


def test_routes_list_table_and_delete_by_prefix(make_proxy, backends, tmp_path):
    a = backends["a"]
    z = make_proxy(_cfg(a, tmp_path))
    ok(z, "routes", "add", "--listener", "web", "--prefix", "/p/", "--cluster", "a",
       "--method", "GET", "--host", "x.example")
    lines = ok(z, "routes", "list").stdout.splitlines()
    assert lines[0].split() == ["LISTENER", "#", "NAME", "MATCH", "HOSTS", "METHODS", "CLUSTER"]
    assert lines[1].split() == ["web", "0", "-", "prefix", "/p/", "x.example", "GET", "a"]
    r = run(z, "routes", "delete", "--listener", "web", "--prefix", "/nothing/")
    assert r.returncode == 1 and "has no route" in r.stderr
    ok(z, "routes", "delete", "--listener", "web", "--prefix", "/p/", "--method", "GET",
       "--host", "x.example")
    assert len(jsonout(z, "routes", "list")["listeners"][0]["routes"]) == 1


def test_config_get_apply_validate(make_proxy, backends, tmp_path):
    a = backends["a"]
    z = make_proxy(_cfg(a, tmp_path))
    v = version(z)
    good = tmp_path / "good.yaml"
    good.write_text(open(z.config_path).read().replace('prefix: "/"', 'prefix: "/only/"'))
    assert "is ok" in ok(z, "config", "validate", str(good)).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(z.config_path).read() + "workers: 3\n" if "workers" not in
                   open(z.config_path).read() else open(z.config_path).read().replace(
                       "workers: 1", "workers: 3"))
    r = run(z, "config", "validate", str(bad))
    assert r.returncode == 1 and "workers: cannot change at run time" in r.stderr, r.stderr
    r = run(z, "config", "apply", str(good), "--expected-version", v + 7)
    assert r.returncode == 1 and "current config version is %d" % v in r.stderr
    ok(z, "config", "apply", str(good), "--expected-version", v)
    assert version(z) == v + 1
    assert wait_until(lambda: _status(z, "/x") == 404, 5, 0.01)
    assert _status(z, "/only/x") == 200


def test_status_stats_health_and_usage(make_proxy, backends, tmp_path):
    a = backends["a"]
    z = make_proxy(_cfg(a, tmp_path))
    httpraw.request(z.port, target="/", timeout=2)
    assert "config version" in ok(z, "status").stdout
    stats = jsonout(z, "stats")
    assert int(stats["requests_total"]) >= 1 and "zproxy_requests_total" in stats["metrics_text"]
    # The health stream stays open without inventing events.
    p = subprocess.Popen([zproxyctl_path(), "--admin", z.config["admin_address"], "health", "watch"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, _ = p.communicate(timeout=1)
        raise AssertionError("health watch ended: %r" % out)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
    assert run(z, "frobnicate").returncode == 2
    r = subprocess.run([zproxyctl_path(), "--admin", "unix:/nonexistent/admin.sock", "status"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "cannot reach the Admin API" in r.stderr
    # --admin defaults to the admin_address of --config.
    r = subprocess.run([zproxyctl_path(), "--config", z.config_path, "-o", "json", "status"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and json.loads(r.stdout)["config_file"] == z.config_path
