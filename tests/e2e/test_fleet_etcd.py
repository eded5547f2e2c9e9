"""Fleet mode end to end (docs/fleet.md): three zproxyd nodes share their listeners and
clusters through a real 3-member etcd cluster on loopback. A change made through any node's
Admin API is served by every node; racing writes get one winner; an invalid config written
with etcdctl is refused by every node; etcd lost, compacted or losing its leader never
interrupts traffic."""

import json
import os
import re
import signal
import statistics
import subprocess
import threading
import time

import pytest

import httpraw
import yamlgen
from conftest import HTTP_LIMITS, catch_all, cluster
from ctl import jsonout, ok, run
from etcd_cluster import EtcdCluster
from procs import base_config, cpu_seconds, free_port, wait_until
from tlscerts import _openssl

PREFIX = "/zproxy/e2e/"


def _node_cfg(name, endpoints, a, port, **etcd):
    source = {"endpoints": list(endpoints), "prefix": PREFIX, "dial_timeout_ms": 1000,
              "node_ttl_s": 2}
    source.update(etcd)
    web = {"name": "web", "address": "127.0.0.1:%d" % port, "routes": catch_all("a"),
           "http": dict(HTTP_LIMITS)}
    return base_config([web], [cluster("a", a.addr)], config_source={"etcd": source},
                       node={"name": name, "listener_addresses": {"web": "127.0.0.1:%d" % port}})


class Fleet:
    def __init__(self, etcd, nodes, cfgs):
        self.etcd = etcd
        self.nodes = nodes
        self.cfgs = cfgs


@pytest.fixture
def etcd(tmp_path):
    c = EtcdCluster(str(tmp_path / "etcd"))
    yield c
    c.stop()


def _start_fleet(etcd, make_proxy, a, endpoints_of=None, allow_stderr=()):
    nodes, cfgs = [], []
    for name in ("a", "b", "c"):
        endpoints = endpoints_of(name) if endpoints_of else etcd.endpoints
        cfg = _node_cfg(name, endpoints, a, free_port())
        cfgs.append(cfg)
        nodes.append(make_proxy(cfg, name="node-" + name, expect_rc=None,
                                allow_stderr=allow_stderr))
    return Fleet(etcd, nodes, cfgs)


@pytest.fixture
def fleet(etcd, make_proxy, backends):
    return _start_fleet(etcd, make_proxy, backends["a"])


def _served_by(port, target, name):
    try:
        r = httpraw.request(port, target=target, timeout=0.5)
    except (OSError, httpraw.ConnectionClosed):
        return False
    return r.status == 200 and ("from %s" % name).encode() in r.body


def _fleet_status(z):
    return jsonout(z, "status")["fleet"]


def _rev(z):
    return int(_fleet_status(z).get("applied_revision", 0))


def _converged(f, rev):
    return all(_rev(z) == rev for z in f.nodes)


def _etcd_rev_of_config(etcd):
    r = etcd.ctl("get", PREFIX + "config", "-w", "json")
    return int(json.loads(r.stdout)["kvs"][0]["mod_revision"])


def test_change_through_one_node_is_served_by_all(fleet, backends):
    """A route added through node a's Admin API is served by b and c within 1 s; the p50/p99
    of 50 such changes are printed (write on a -> served on b and c)."""
    a_node, b_node, c_node = fleet.nodes
    b = backends["b"]
    seeded = _etcd_rev_of_config(fleet.etcd)
    assert wait_until(lambda: _converged(fleet, seeded), 5), [_fleet_status(z) for z in fleet.nodes]
    ok(a_node, "clusters", "add", "b", "--endpoint", b.addr)
    latencies, after_return = [], []
    cpu_before = cpu_seconds(c_node.proc.pid) + sum(cpu_seconds(p) for p in c_node.dataplane_pids())
    for i in range(50):
        target = "/p%d/x" % i
        t0 = time.monotonic()
        ok(a_node, "routes", "add", "--listener", "web", "--prefix", "/p%d/" % i, "--cluster", "b")
        t1 = time.monotonic()
        served = wait_until(lambda: all(_served_by(z.port, target, "b") for z in (b_node, c_node)),
                            1.0, 0.001)
        latencies.append(time.monotonic() - t0)
        after_return.append(time.monotonic() - t1)
        assert served, "change %d not served by b and c within 1 s" % i
    cpu = cpu_seconds(c_node.proc.pid) + sum(cpu_seconds(p) for p in c_node.dataplane_pids()) \
        - cpu_before
    latencies.sort()
    after_return.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000 if len(latencies) >= 100 else \
        latencies[-1] * 1000
    print("fleet propagation over %d changes (zproxyctl on a -> served by b and c): "
          "p50 %.1f ms, p99 %.1f ms, max %.1f ms" % (len(latencies), p50, p99,
                                                     latencies[-1] * 1000))
    print("  of which after zproxyctl returned (a applied it; etcd watch -> b and c serve): "
          "p50 %.1f ms, max %.1f ms" % (statistics.median(after_return) * 1000,
                                       after_return[-1] * 1000))
    print("CPU on node c (zproxyd + data plane, watch event -> applied; includes serving the "
          "test's polling requests): %.1f ms per change" % (cpu * 1000 / len(latencies)))
    rev = _etcd_rev_of_config(fleet.etcd)
    assert wait_until(lambda: _converged(fleet, rev), 3)
    # The same version on every node, in GetConfig, the status and the metric.
    for z in fleet.nodes:
        assert int(jsonout(z, "config", "get")["version"]) == rev
        m = httpraw.request(z.metrics_port, target="/metrics", timeout=2).body.decode()
        assert "zproxy_config_etcd_revision %d" % rev in m, m[-2000:]
        assert re.search(r"fleet revision\s+%d$" % rev, ok(z, "status").stdout, re.M)
    # The fleet as etcd knows it: three live nodes at that revision.
    def published():
        nodes = jsonout(a_node, "fleet", "status")["nodes"]
        return sorted(n["name"] for n in nodes) == ["a", "b", "c"] and \
            all(int(n["applied_revision"]) == rev for n in nodes)

    assert wait_until(published, 2, 0.1), jsonout(a_node, "fleet", "status")
    table = ok(a_node, "fleet", "status").stdout
    assert re.search(r"^c\s+%d\s" % rev, table, re.M), table
    # A node that dies leaves the list when its lease (2 s) expires.
    c_node.kill()
    assert wait_until(lambda: sorted(n["name"] for n in jsonout(
        a_node, "fleet", "status")["nodes"]) == ["a", "b"], 6, 0.2)


def test_racing_writes_on_two_nodes_one_wins(fleet, backends, tmp_path):
    a_node, b_node, c_node = fleet.nodes
    rev = int(jsonout(a_node, "config", "get")["version"])
    assert rev > 0
    results = {}

    def add(z, prefix):
        results[prefix] = run(z, "routes", "add", "--listener", "web", "--prefix", prefix,
                              "--cluster", "a", "--expected-version", rev)

    threads = [threading.Thread(target=add, args=(a_node, "/from-a/")),
               threading.Thread(target=add, args=(b_node, "/from-b/"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results.values())
    assert codes == [0, 1], {k: (r.returncode, r.stdout, r.stderr) for k, r in results.items()}
    loser = next(r for r in results.values() if r.returncode == 1)
    now = _etcd_rev_of_config(fleet.etcd)  # the winner's (node keys share the counter)
    assert "FAILED_PRECONDITION" in loser.stderr or "stale" in loser.stderr or \
        "concurrently" in loser.stderr, loser.stderr
    assert "at revision %d" % now in loser.stderr, loser.stderr
    winner = next(p for p, r in results.items() if r.returncode == 0)
    assert wait_until(lambda: _converged(fleet, now), 3)
    for z in fleet.nodes:
        prefixes = [r["match"].get("prefix") for r in
                    jsonout(z, "routes", "list")["listeners"][0]["routes"]]
        assert winner in prefixes and len(prefixes) == 2, prefixes
    # ApplyConfig through any node: the file's listeners and clusters become the fleet's
    # (its node-local fields stay each node's own).
    web = {"name": "web", "address": "127.0.0.1:1", "http": dict(HTTP_LIMITS),
           "routes": [{"match": {"prefix": "/applied/"}, "cluster": "b"}] + catch_all("a")}
    path = tmp_path / "fleet-apply.yaml"
    path.write_text(yamlgen.dump(base_config(
        [web], [cluster("a", backends["a"].addr), cluster("b", backends["b"].addr)])))
    ok(b_node, "config", "validate", str(path))  # as b would serve it (its own address)
    out = ok(c_node, "config", "apply", str(path), "--expected-version", now).stdout
    applied = _etcd_rev_of_config(fleet.etcd)
    assert "config version %d" % applied in out, out
    assert wait_until(lambda: _converged(fleet, applied), 3)
    for z in fleet.nodes:
        assert wait_until(lambda: _served_by(z.port, "/applied/x", "b"), 2)
        assert _served_by(z.port, "/x", "a")
    # SIGHUP re-reads b's file for its node-local settings; the fleet part stays etcd's.
    b_node.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: re.search(r"reload: .* is (unchanged|live as config version)",
                                        b_node.stderr()), 5), b_node.stderr()[-2000:]
    assert _rev(b_node) == applied
    assert _served_by(b_node.port, "/applied/x", "b")


REFUSED = (r"fleet: refusing revision \d+ of /zproxy/e2e/config: "
           r"listeners\[0\]\.routes\[0\]\.cluster: unknown cluster \"nope\"; "
           r"still serving revision \d+")


@pytest.mark.expect_stderr(REFUSED)
def test_invalid_config_written_with_etcdctl_is_refused_by_every_node(fleet, backends):
    before = _etcd_rev_of_config(fleet.etcd)
    assert wait_until(lambda: _converged(fleet, before), 5)
    bad = ("listeners:\n  - name: web\n    address: 127.0.0.1:1\n    routes:\n"
           "      - match: { prefix: / }\n        cluster: nope\n"
           "clusters:\n  - name: a\n    endpoints: [ %s ]\n" % backends["a"].addr)
    fleet.etcd.ctl("put", PREFIX + "config", bad)
    bad_rev = _etcd_rev_of_config(fleet.etcd)

    def refused(z):
        f = _fleet_status(z)
        return int(f.get("refused_revision", 0)) == bad_rev and \
            'unknown cluster "nope"' in f.get("refused_error", "")

    assert wait_until(lambda: all(refused(z) for z in fleet.nodes), 3), \
        [_fleet_status(z) for z in fleet.nodes]
    for z in fleet.nodes:
        assert re.search(REFUSED, z.stderr()), z.stderr()[-2000:]
        assert _rev(z) == before
        assert _served_by(z.port, "/x", "a")
    # The next valid revision is applied (YAML, as an operator writes it).
    good = bad.replace("cluster: nope", "cluster: b") + \
        "  - name: b\n    endpoints: [ %s ]\n" % backends["b"].addr
    fleet.etcd.ctl("put", PREFIX + "config", good)
    good_rev = _etcd_rev_of_config(fleet.etcd)
    assert wait_until(lambda: _converged(fleet, good_rev), 3)
    for z in fleet.nodes:
        assert wait_until(lambda: _served_by(z.port, "/x", "b"), 2)
        assert int(_fleet_status(z).get("refused_revision", 0)) == 0



def test_etcd_down_node_restarts_from_snapshot_and_catches_up(fleet, backends):
    a_node, b_node, c_node = fleet.nodes
    ok(a_node, "clusters", "add", "b", "--endpoint", backends["b"].addr)
    ok(a_node, "routes", "add", "--listener", "web", "--prefix", "/snap/", "--cluster", "b")
    rev = _etcd_rev_of_config(fleet.etcd)
    assert wait_until(lambda: _converged(fleet, rev), 3)
    down = time.monotonic()
    for m in fleet.etcd.members:
        fleet.etcd.stop_member(m)
    # c restarts while etcd is away: it serves the snapshot of what it last applied.
    assert c_node.stop() == 0
    c_node.start(timeout=10)
    assert "serving the snapshot" in c_node.stderr(), c_node.stderr()[-3000:]
    for z in fleet.nodes:
        assert _served_by(z.port, "/snap/x", "b")
        assert _served_by(z.port, "/other", "a")
    time.sleep(max(0, 10 - (time.monotonic() - down)))
    for m in fleet.etcd.members:
        fleet.etcd.start_member(m)
    fleet.etcd.wait_healthy()
    # etcd answers again; a node's channels may still wait out their reconnect backoff (1 s).
    assert wait_until(lambda: run(b_node, "routes", "add", "--listener", "web", "--prefix",
                                  "/after/", "--cluster", "b").returncode == 0, 5, 0.2)
    rev = _etcd_rev_of_config(fleet.etcd)
    assert wait_until(lambda: _converged(fleet, rev), 10), [_fleet_status(z) for z in fleet.nodes]
    assert wait_until(lambda: _served_by(c_node.port, "/after/x", "b"), 2)
    for z in fleet.nodes:
        assert _fleet_status(z).get("connected") is True


def test_compaction_while_a_node_is_cut_off(etcd, make_proxy, backends):
    """c talks only to member m2. While m2 is down the others change the config several
    times and the history is compacted; when m2 is back, c re-reads and converges."""
    m2 = etcd.members[2]
    f = _start_fleet(etcd, make_proxy, backends["a"],
                     endpoints_of=lambda n: [m2.client_url] if n == "c" else etcd.endpoints[:2])
    a_node, b_node, c_node = f.nodes
    etcd.stop_member(m2)
    ok(a_node, "clusters", "add", "b", "--endpoint", backends["b"].addr)
    for i in range(5):
        ok(a_node, "routes", "add", "--listener", "web", "--prefix", "/c%d/" % i, "--cluster", "b")
    rev = _etcd_rev_of_config(etcd)
    etcd.ctl("compact", str(etcd.revision()), endpoints=etcd.endpoints[:2])
    assert _rev(c_node) < rev
    etcd.start_member(m2)
    assert wait_until(lambda: _rev(c_node) == rev, 15), _fleet_status(c_node)
    assert wait_until(lambda: _served_by(c_node.port, "/c4/x", "b"), 2)


def test_leader_killed_under_load_fails_no_request(fleet, backends):
    a_node, b_node, c_node = fleet.nodes
    wrks = [subprocess.Popen(["wrk", "-t1", "-c10", "-d6s", "http://127.0.0.1:%d/" % z.port],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for z in fleet.nodes]
    time.sleep(1.5)
    leader = fleet.etcd.leader()
    fleet.etcd.stop_member(leader, signal.SIGKILL)
    # The fleet still takes changes with two members.
    assert wait_until(lambda: run(a_node, "clusters", "add", "b", "--endpoint",
                                  backends["b"].addr).returncode == 0, 5, 0.2)
    rev = _etcd_rev_of_config(fleet.etcd)
    assert wait_until(lambda: _converged(fleet, rev), 5), [_fleet_status(z) for z in fleet.nodes]
    for w in wrks:
        out = w.communicate(timeout=30)[0]
        print(out)
        assert "Socket errors" not in out, out
        assert "Non-2xx" not in out, out
        assert int(re.search(r"(\d+) requests in", out).group(1)) > 100, out


def test_etcd_restored_from_an_older_snapshot_is_followed(fleet, backends, tmp_path):
    """The whole cluster restored from a snapshot older than what the nodes serve: they
    follow the store back (the newer route disappears), then take new writes as usual."""
    a_node, b_node, c_node = fleet.nodes
    ok(a_node, "clusters", "add", "b", "--endpoint", backends["b"].addr)
    ok(a_node, "routes", "add", "--listener", "web", "--prefix", "/old/", "--cluster", "b")
    old_rev = _etcd_rev_of_config(fleet.etcd)
    snap = str(tmp_path / "etcd.snap")
    fleet.etcd.ctl("snapshot", "save", snap, endpoints=[fleet.etcd.members[0].client_url])
    ok(b_node, "routes", "add", "--listener", "web", "--prefix", "/new/", "--cluster", "b")
    new_rev = _etcd_rev_of_config(fleet.etcd)
    assert wait_until(lambda: _converged(fleet, new_rev), 3)
    assert all(_served_by(z.port, "/new/x", "b") for z in fleet.nodes)
    fleet.etcd.restore(snap)
    assert _etcd_rev_of_config(fleet.etcd) == old_rev
    assert wait_until(lambda: _converged(fleet, old_rev), 10), \
        [_fleet_status(z) for z in fleet.nodes]
    for z in fleet.nodes:
        assert wait_until(lambda: _served_by(z.port, "/new/x", "a"), 2)
        assert _served_by(z.port, "/old/x", "b")
        assert "older than the applied %d (etcd restored from an older snapshot?)" % new_rev \
            in z.stderr(), z.stderr()[-3000:]
    assert wait_until(lambda: run(c_node, "routes", "add", "--listener", "web", "--prefix",
                                  "/later/", "--cluster", "b").returncode == 0, 5, 0.2)
    rev = _etcd_rev_of_config(fleet.etcd)
    assert wait_until(lambda: _converged(fleet, rev), 5)
    assert all(_served_by(z.port, "/later/x", "b") for z in fleet.nodes)


def test_two_nodes_with_one_name_are_reported(tmp_path, make_proxy, backends):
    etcd = EtcdCluster(str(tmp_path / "etcd1"), size=1)
    try:
        a = backends["a"]
        first = make_proxy(_node_cfg("dup", etcd.endpoints, a, free_port()), name="dup-1")
        assert wait_until(lambda: int(jsonout(first, "fleet", "status")["revision"]) > 0 and
                          len(jsonout(first, "fleet", "status").get("nodes", [])) == 1, 5)
        second = make_proxy(_node_cfg("dup", etcd.endpoints, a, free_port()), name="dup-2")
        assert wait_until(lambda: "fleet: /zproxy/e2e/nodes/dup is held under another lease"
                          in second.stderr(), 5), second.stderr()[-2000:]
    finally:
        etcd.stop()


def _ip_leaf(d, name):
    """A leaf for 127.0.0.1 (IP SAN) signed by d/ca.pem, usable as server and client."""
    key, csr, pem, ext = ("%s/%s.%s" % (d, name, x) for x in ("key", "csr", "pem", "ext"))
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("x509", "-req", "-in", csr, "-CA", d + "/ca.pem", "-CAkey", d + "/ca.key",
             "-CAcreateserial", "-out", pem, "-extfile", ext, "-days", "2")
    return pem, key



def test_tls_to_etcd_with_client_certificates(tmp_path, make_proxy, backends):
    d = str(tmp_path / "pki")
    os.makedirs(d)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", d + "/ca.key", "-out", d + "/ca.pem", "-days", "2",
             "-subj", "/CN=zproxy fleet test CA")
    server_pem, server_key = _ip_leaf(d, "etcd")
    client_pem, client_key = _ip_leaf(d, "zproxyd")
    etcd = EtcdCluster(str(tmp_path / "etcd"), size=1,
                       tls={"ca": d + "/ca.pem", "cert": server_pem, "key": server_key,
                            "client_cert": client_pem, "client_key": client_key})
    try:
        a = backends["a"]
        tls = {"ca": d + "/ca.pem", "cert": client_pem, "key": client_key}
        z = make_proxy(_node_cfg("tls-node", etcd.endpoints, a, free_port(), tls=tls),
                       name="node-tls")
        assert wait_until(lambda: _fleet_status(z).get("connected") is True, 5), _fleet_status(z)
        assert _rev(z) == _etcd_rev_of_config(etcd) > 0
        assert "seeded it" in z.stderr()
        # Without a client certificate etcd refuses the node: it serves its file meanwhile.
        no_cert = make_proxy(_node_cfg("no-cert", etcd.endpoints, a, free_port(),
                                       tls={"ca": d + "/ca.pem"}), name="node-no-cert")
        assert _served_by(no_cert.port, "/", "a")
        f = _fleet_status(no_cert)
        assert f.get("connected") is not True and int(f.get("applied_revision", 0)) == 0, f
    finally:
        etcd.stop()
