"""The data plane drops every privilege after bootstrap (dataplane/privileges): all threads
show empty capability sets (CapInh/CapPrm/CapEff/CapBnd/CapAmb) and NoNewPrivs 1, as uid 0
or as dataplane_user, while HTTP, TLS, tcp_proxy, Admin API pushes (routes, new
certificates), a listener added through a handover, the access log, /metrics and adoption
after SIGKILL of zproxyd still work. Real zproxyd, curl, zproxyctl, raw sockets."""

import copy
import hashlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

import ctl
import httpraw
import promtext
import yamlgen
from conftest import catch_all, cluster, listener
from procs import base_config, free_port, wait_until
from test_dataplane_sync import _alive, _pid, _served_by
from test_health import bpf_available
from test_metrics import scrape
from test_tcp_proxy import Upstream
from test_tls import curl
from tlscerts import Certs

CAP_FIELDS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def thread_status(pid):
    """{tid: {field: value}} from /proc/PID/task/*/status (capabilities are per thread)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        fields = {}
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        out[int(tid)] = fields
    return out


def assert_unprivileged(pid, uid):
    threads = thread_status(pid)
    assert len(threads) > 2, threads.keys()  # workers, /metrics, gRPC: all of them
    for tid, s in threads.items():
        for f in CAP_FIELDS:
            assert int(s[f], 16) == 0, "pid %d tid %d (%s): %s %s" % (pid, tid, s["Name"], f, s[f])
        assert s["NoNewPrivs"] == "1", (tid, s["Name"])
        assert s["Uid"].split() == [str(uid)] * 4, (tid, s["Uid"])
        assert s["Gid"].split()[0] == str(pwd.getpwuid(uid).pw_gid), (tid, s["Gid"])


def info_labels(z):
    m = promtext.parse(httpraw.request(z.metrics_port, target="/metrics").body.decode())
    return m["zproxy_dataplane_info"].samples[0][1]


def _write(d, cfg, name):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(yamlgen.dump(cfg))
    return p


@pytest.fixture
def world_dir():
    """A directory every user can enter (the dataplane_user must reach the sync socket and
    certificates pushed later); pytest's own tmp dirs are 0700."""
    d = tempfile.mkdtemp(prefix="zp-priv-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _config(backends, certs, tcp_upstream, world_dir, **top):
    web = listener("web", catch_all("a"))
    secure = listener("secure", catch_all("a"))
    secure["tls"] = {"certificates": [certs.ecdsa]}
    # sockmap: the workers insert sockets into zproxyd's SOCKHASH with bpf() after the drop.
    db = {"name": "db", "address": "127.0.0.1:0",
          "tcp_proxy": {"cluster": "db", "mode": "sockmap"}}
    top.setdefault("metrics_address", "127.0.0.1:%d" % free_port())
    top.setdefault("access_log", os.path.join(world_dir, "root-only", "access.log"))
    top.setdefault("state_dir", os.path.join(world_dir, "state"))
    return base_config([web, secure, db],
                       [cluster("a", backends["a"].addr), {"name": "db",
                                                           "endpoints": [tcp_upstream.addr]}],
                       **top)


def _sockmap_roundtrip(port, data):
    """Sends only once the pair is established (a FIN before it sends the connection to
    the splice fallback: test_passthrough.py), then half-closes and reads to EOF."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    time.sleep(0.3)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    return got


def _exercise(z, backends, certs, world_dir, uid, payload=b"x" * 100000):
    """Traffic on every listener kind, a route pushed in place, /metrics; the process keeps
    its pid and stays unprivileged throughout."""
    pid = _pid(z)
    assert_unprivileged(pid, uid)
    assert httpraw.request(z.port, target="/").status == 200
    r = curl(z.ports["secure"], "example.com", "/", cacert=certs.path("ca.pem"))
    assert r.returncode == 0, r.stderr
    fams = scrape(z)
    mode = fams["zproxy_listener_passthrough_mode"].samples[0][1]["mode"]
    assert mode == ("sockmap" if bpf_available() else "splice"), mode
    before = fams["zproxy_passthrough_connections_total"].value(mode=mode)
    got = _sockmap_roundtrip(z.ports["db"], payload)
    assert got[:32] == hashlib.sha256(payload).digest() and len(got) == 32 + (1 << 20)
    assert scrape(z)["zproxy_passthrough_connections_total"].value(mode=mode) == before + 1
    if mode == "sockmap":
        assert wait_until(
            lambda: scrape(z)["zproxy_sockmap_spliced_bytes_total"].value() >= 1 << 20, 5)
    # An Admin API route change, pushed to this very process.
    name = "b%d" % free_port()
    ctl.ok(z, "clusters", "add", name, "--endpoint", backends["b"].addr)
    ctl.ok(z, "routes", "add", "--listener", "web", "--prefix", "/%s/" % name, "--cluster", name)
    assert wait_until(lambda: _served_by(z, "/%s/x" % name, "b"), 5)
    assert _pid(z) == pid
    assert info_labels(z)["privileges"] == "dropped", info_labels(z)
    assert_unprivileged(pid, uid)


def _setup_files(world_dir):
    # The access log lives in a root-only directory: opened before the drop, written after.
    os.mkdir(os.path.join(world_dir, "root-only"), 0o700)
    os.mkdir(os.path.join(world_dir, "certs"), 0o700)
    certs = Certs(os.path.join(world_dir, "certs"))
    for n in os.listdir(certs.dir):
        os.chmod(certs.path(n), 0o600)  # root's own files: read before the drop only
    return certs


def _check_access_log(world_dir):
    path = os.path.join(world_dir, "root-only", "access.log")
    assert wait_until(lambda: os.path.exists(path) and os.path.getsize(path) > 0, 3)
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0


def _adopt_after_sigkill(z):
    pid = _pid(z)
    z.proc.send_signal(signal.SIGKILL)
    z.proc.wait(5)
    z.start()
    assert wait_until(lambda: "adoption: data plane pid %d adopted" % pid in z.stderr(), 10,
                      0.02), z.stderr()[-4000:]
    assert wait_until(lambda: ctl.ok(z, "status") and _pid(z) == pid, 5)
    return pid


def test_dataplane_drops_every_capability_as_root(make_proxy, backends, world_dir):
    certs = _setup_files(world_dir)
    up = Upstream()
    try:
        z = make_proxy(_config(backends, certs, up, world_dir))
        assert "privileges: dropped every capability" in z.stderr(), z.stderr()[-3000:]
        _exercise(z, backends, certs, world_dir, uid=0)
        _check_access_log(world_dir)

        # New certificates pushed in place: read by a uid 0 without CAP_DAC_OVERRIDE, so
        # root's 0600 files still work (owner bits).
        cfg = copy.deepcopy(z.config)
        cfg["listeners"][1]["tls"] = {"certificates": [certs.ecdsa, certs.other]}
        pid = _pid(z)
        ctl.ok(z, "config", "apply", _write(world_dir, cfg, "more-certs.yaml"))
        r = curl(z.ports["secure"], "other.test", "/", cacert=certs.path("ca.pem"))
        assert r.returncode == 0 and b"CN=other.test" in r.stderr, r.stderr
        assert _pid(z) == pid

        # Adoption by a new zproxyd after SIGKILL: same process, still unprivileged, serving.
        assert _adopt_after_sigkill(z) == pid
        _exercise(z, backends, certs, world_dir, uid=0)

        # A change the workers cannot take in place (NACK needs_restart): a new data plane
        # through a graceful handover, dropped as well.
        cfg = copy.deepcopy(z.config)
        cfg["listeners"][0].setdefault("http", {})["max_header_bytes"] = 262144
        ctl.ok(z, "config", "apply", _write(world_dir, cfg, "bigger-heads.yaml"))
        assert "graceful data plane handover" in z.stderr()
        assert _pid(z) != pid
        assert wait_until(lambda: _served_by(z, "/", "a"), 5)
        # The old one drains first (it shares the listen and /metrics sockets until then).
        assert wait_until(lambda: not _alive(pid), 10)
        _exercise(z, backends, certs, world_dir, uid=0)
    finally:
        up.close()


def test_dataplane_user_nobody(make_proxy, backends, world_dir):
    nobody = pwd.getpwnam("nobody")
    certs = _setup_files(world_dir)
    up = Upstream()
    try:
        # The sync socket (beside the admin socket) lives in a directory nobody may enter;
        # zproxyd makes nobody the socket's owner (mode 0600).
        z = make_proxy(_config(backends, certs, up, world_dir, dataplane_user="nobody",
                               admin_address="unix:%s/admin.sock" % world_dir))
        st = os.stat(os.path.join(world_dir, "dataplane.sock"))
        assert st.st_uid == nobody.pw_uid and stat.S_IMODE(st.st_mode) == 0o600
        assert wait_until(lambda: "sync: data plane pid %d connected" % _pid(z) in z.stderr(),
                          5), z.stderr()[-3000:]
        assert "running as nobody (uid %d" % nobody.pw_uid in z.stderr()
        _exercise(z, backends, certs, world_dir, uid=nobody.pw_uid)
        _check_access_log(world_dir)
        pid = _pid(z)

        # A certificate pushed later: root's 0600 files in a 0700 directory, which nobody
        # cannot open. zproxyd sends their contents (controlplane/state/inline_tls_files.h).
        cfg = copy.deepcopy(z.config)
        cfg["listeners"][1]["tls"] = {"certificates": [certs.ecdsa, certs.other]}
        ctl.ok(z, "config", "apply", _write(world_dir, cfg, "more-certs.yaml"))
        r = curl(z.ports["secure"], "other.test", "/", cacert=certs.path("ca.pem"))
        assert r.returncode == 0 and b"CN=other.test" in r.stderr, r.stderr
        assert _pid(z) == pid

        assert _adopt_after_sigkill(z) == pid
        _exercise(z, backends, certs, world_dir, uid=nobody.pw_uid)
    finally:
        up.close()


def test_unknown_dataplane_user_is_refused(tmp_path):
    from procs import run_check
    cfg = base_config([listener("web", catch_all("a"))], [cluster("a", "127.0.0.1:3000")],
                      admin_address="unix:/tmp/zp-check/admin.sock",
                      dataplane_user="zproxy-no-such-user")
    p = tmp_path / "c.yaml"
    p.write_text(yamlgen.dump(cfg))
    r = run_check(str(p))
    assert r.returncode == 1 and "dataplane_user" in r.stderr and \
        "zproxy-no-such-user" in r.stderr, r.stderr


def test_keep_privileges_opt_out_is_visible(make_proxy, backends, world_dir):
    """dataplane_keep_privileges: true keeps the capabilities, and says so (warning line,
    zproxy_dataplane_info{privileges="kept"}): the checks above can fail."""
    cfg = base_config([listener("web", catch_all("a"))], [cluster("a", backends["a"].addr)],
                      metrics_address="127.0.0.1:%d" % free_port(),
                      dataplane_keep_privileges=True)
    z = make_proxy(cfg)
    assert "privileges: KEPT" in z.stderr()
    assert info_labels(z)["privileges"] == "kept"
    status = thread_status(_pid(z))
    assert all(int(s["CapEff"], 16) != 0 and s["NoNewPrivs"] == "0" for s in status.values())
    assert httpraw.request(z.port, target="/").status == 200


def test_dataplane_user_cannot_change_at_run_time(make_proxy, backends, world_dir):
    """The sync socket was handed to the data plane's user when zproxyd started: a config
    changing dataplane_user through the Admin API is refused, the old one keeps serving."""
    z = make_proxy(base_config([listener("web", catch_all("a"))],
                               [cluster("a", backends["a"].addr)]))
    cfg = copy.deepcopy(z.config)
    cfg["dataplane_user"] = "nobody"
    r = ctl.run(z, "config", "apply", _write(world_dir, cfg, "user.yaml"))
    assert r.returncode != 0 and "dataplane_user" in r.stderr + r.stdout and \
        "cannot change at run time" in r.stderr + r.stdout, r.stderr + r.stdout
    assert_unprivileged(_pid(z), 0)
    assert httpraw.request(z.port, target="/").status == 200
