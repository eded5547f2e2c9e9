"""Sidecar interception by cgroup (issue 15 §1, docs/sidecar.md): zproxyd attaches
connect4/6, getpeername4/6 and sockops to a cgroup v2 child this test makes; an application
process in it connects to 127.0.0.2:8000 and 127.0.0.3:9000 (two backends bound there) and
lands on zproxy's outbound listener, which forwards to the address it dialled (read from
the sidecar's BPF map, not SO_ORIGINAL_DST: no nftables here). The application's
getpeername shows what it dialled; a process outside the cgroup and excluded ports/CIDRs go
direct; after a clean stop or a SIGKILL nothing stays attached. The cgroup is removed in a
finally."""

import json
import os
import random
import subprocess
import sys

import pytest

import machine
import procs
import yamlgen
from conftest import listener
from procs import Backend, base_config, free_port

A = ("127.0.0.2", 8000)
B = ("127.0.0.3", 9000)

# The application: joins the cgroup (if given), then per target connects, reads
# getpeername, sends GET /echo and prints what came back, one JSON object per target.
APP = r"""
import json, socket, sys
procs, targets = sys.argv[1], json.loads(sys.argv[2])
if procs:
    with open(procs, "w") as f:
        f.write("0")  # "0": the writing process itself
for ip, port in targets:
    s = socket.create_connection((ip, port), timeout=10)
    peer = list(s.getpeername())
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    print(json.dumps({"peer": peer, "status": int(head.split()[1]), "body": body.decode()}))
"""


def cgroup2_mount():
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, typ = line.split()[:3]
            if typ == "cgroup2":
                return mnt
    return None


def run_app(targets, cgroup=None):
    """[(peer, status, echo json)] per target."""
    out = subprocess.run(
        [sys.executable, "-c", APP, os.path.join(cgroup, "cgroup.procs") if cgroup else "",
         json.dumps(targets)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    res = []
    for line in out.stdout.splitlines():
        j = json.loads(line)
        echo = json.loads(j["body"]) if j["status"] == 200 else j["body"]
        res.append((tuple(j["peer"]), j["status"], echo))
    return res


def headers(echo):
    seen = {}
    for n, v in echo["headers"]:
        seen.setdefault(n.lower(), []).append(v)
    return seen


def attached(cgroup):
    """Program names bpftool lists on the cgroup."""
    out = subprocess.run(["bpftool", "-j", "cgroup", "show", cgroup], capture_output=True,
                         text=True, timeout=10)
    if out.returncode != 0 or not out.stdout.strip():
        return []
    return sorted(p.get("name", "") for p in json.loads(out.stdout))


@pytest.fixture
def cgroup():
    mnt = cgroup2_mount()
    if mnt is None:
        pytest.skip("machine lacks a cgroup2 mount")
    machine.skip_unless("bpf")
    path = os.path.join(mnt, "zproxy_test_%08x" % random.getrandbits(32))
    os.mkdir(path)
    try:
        yield path
    finally:
        # The application processes have exited; a cgroup without processes can go.
        os.rmdir(path)
        assert not os.path.exists(path)


@pytest.fixture(scope="module")
def backends(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("sidecar"))
    made = [Backend("side-a", d, listen="%s:%d" % A), Backend("side-b", d, listen="%s:%d" % B),
            Backend("side-excl-port", d, listen="127.0.0.2:0"),
            Backend("side-excl-cidr", d, listen="127.0.0.4:0")]
    yield made
    for b in made:
        b.stop()


def sidecar_config(cgroup, backends):
    out = listener("outbound", [{"match": {"prefix": "/"}, "cluster": "passthrough"}])
    out["original_destination"] = True
    return base_config([out], [{"name": "passthrough", "type": "original_destination"}],
                       sidecar={"cgroup": cgroup, "outbound_listener": "outbound",
                                "exclude_ports": [backends[2].port],
                                "exclude_cidrs": ["127.0.0.4/32"]})


def test_application_in_the_cgroup_is_intercepted(cgroup, backends, make_proxy):
    z = make_proxy(sidecar_config(cgroup, backends))
    progs = attached(cgroup)
    # zproxy_lh_ops: sk_msg's sockops, on by default (test_sidecar_skmsg.py).
    assert progs == sorted(["zproxy_connect4", "zproxy_connect6", "zproxy_getpeer4",
                            "zproxy_getpeer6", "zproxy_sidecar_ops", "zproxy_lh_ops"]), progs
    excl_port = ("127.0.0.2", backends[2].port)
    excl_cidr = ("127.0.0.4", backends[3].port)
    res = run_app([A, B, excl_port, excl_cidr], cgroup)
    for (peer, status, echo), target, name in zip(res[:2], (A, B), ("side-a", "side-b")):
        assert status == 200, echo
        assert echo["name"] == name, echo
        assert peer == target  # getpeername4: what the application dialled
        assert headers(echo).get("x-forwarded-for") == ["127.0.0.1"], echo  # through zproxy
    for (peer, status, echo), target in zip(res[2:], (excl_port, excl_cidr)):
        assert status == 200 and peer == target
        assert "x-forwarded-for" not in headers(echo), echo  # went direct
    fams = procs_metrics(z)
    assert fams["zproxy_original_destination_total"].value(source="bpf_map") == 2
    assert fams["zproxy_original_destination_total"].value(source="so_original_dst") == 0
    # Outside the cgroup nothing is intercepted.
    (peer, status, echo), = run_app([A])
    assert status == 200 and "x-forwarded-for" not in headers(echo), echo
    # A clean stop detaches everything.
    assert z.stop() == 0
    assert attached(cgroup) == []


def test_sigkill_fails_open(cgroup, backends, make_proxy):
    """zproxyd's bpf_links close with its descriptors: a SIGKILLed zproxyd leaves nothing
    attached, and the application's connections go direct (not to a dead listener)."""
    z = make_proxy(sidecar_config(cgroup, backends), expect_rc=None)
    assert len(attached(cgroup)) == 6  # with sk_msg's sockops (on by default)
    child = own_cgroup_of(z)
    z.kill()
    assert procs.wait_until(lambda: attached(cgroup) == [], 5), attached(cgroup)
    (peer, status, echo), = run_app([A], cgroup)
    assert status == 200 and "x-forwarded-for" not in headers(echo), echo
    # The cgroup zproxyd made for itself outlives a SIGKILL (the next one started beside it
    # removes it); this test cleans up after itself.
    if child is not None:
        assert procs.wait_until(lambda: remove_cgroup(child), 5), child


def own_cgroup_of(z):
    """The cgroup zproxyd moved into for sk_msg (bpf/proxy_cgroup.h), or None."""
    err = z.stderr()
    if "into a cgroup of its own, " not in err:
        return None
    return err.split("into a cgroup of its own, ", 1)[1].split(",", 1)[0]


def remove_cgroup(path):
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False  # still populated: its processes are on their way out
    return True


def test_root_cgroup_is_refused(backends, tmp_path):
    mnt = cgroup2_mount()
    if mnt is None:
        pytest.skip("machine lacks a cgroup2 mount")
    cfg = sidecar_config(mnt, backends)
    cfg["listeners"][0]["address"] = "127.0.0.1:%d" % free_port()
    cfg["admin_address"] = "unix:%s/admin.sock" % tmp_path
    cfg["state_dir"] = str(tmp_path / "state")
    cfg["bpffs_path"] = str(tmp_path / "bpf")
    path = tmp_path / "root.yaml"
    path.write_text(yamlgen.dump(cfg))
    out = subprocess.run([procs.zproxyd_path(), "--config", str(path)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1, out.stderr
    assert "is the root of the cgroup2 mount: refusing to intercept every process" in out.stderr
    assert attached(mnt) == [] or "zproxy_connect4" not in attached(mnt)


def procs_metrics(z):
    from test_original_destination import scrape
    return scrape(z)


def test_ipv6_application_is_intercepted(cgroup, make_proxy, tmp_path):
    """connect6 and getpeername6: with the outbound listener on ::1, an application's IPv6
    connection to [::1]:P lands on zproxy, which forwards it to [::1]:P; the application
    still sees [::1]:P as its peer. An IPv4 connection has no IPv4 listener to go to and is
    left alone (connect4 has no target)."""
    v6 = Backend("side-v6", str(tmp_path), listen="[::1]:0")
    v4 = Backend("side-v4", str(tmp_path), listen="127.0.0.2:0")
    try:
        out = listener("outbound", [{"match": {"prefix": "/"}, "cluster": "passthrough"}])
        out["original_destination"] = True
        out["address"] = "[::1]:%d" % free_port("[::1]")
        z = make_proxy(base_config([out], [{"name": "passthrough", "type": "original_destination"}],
                                   sidecar={"cgroup": cgroup, "outbound_listener": "outbound"}))
        (peer, status, echo), (peer4, status4, echo4) = run_app(
            [("::1", v6.port), ("127.0.0.2", v4.port)], cgroup)
        assert status == 200 and echo["name"] == "side-v6", echo
        assert peer[:2] == ("::1", v6.port)  # getpeername6: what the application dialled
        assert headers(echo).get("x-forwarded-for") == ["::1"], echo  # through zproxy
        assert status4 == 200 and peer4 == ("127.0.0.2", v4.port)
        assert "x-forwarded-for" not in headers(echo4), echo4  # direct
        fams = procs_metrics(z)
        assert fams["zproxy_original_destination_total"].value(source="bpf_map") == 1
        assert z.stop() == 0
        assert attached(cgroup) == []
    finally:
        v6.stop()
        v4.stop()
