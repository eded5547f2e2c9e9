"""Inbound sidecar interception (issue 15 §2, docs/sidecar.md): zproxyd attaches an
sk_lookup program to its network namespace, so TCP arriving for an application's port
(inbound_ports) on a non-loopback local address lands on zproxy's inbound listener, which
forwards to the application over loopback (not steered: no loop). Runs in a network
namespace this test makes (loopback, with 10.99.0.1 and fd00:99::1 added to lo; no route out),
entered with setns so every process the test starts lives there; removed in a finally."""

import ctypes
import json
import os
import random
import socket
import subprocess

import pytest

import machine
import procs
from conftest import catch_all, cluster, listener
from procs import Backend, base_config

LOCAL = "10.99.0.1"  # the namespace's "host address": what remote clients would dial
LOCAL6 = "fd00:99::1"
APP_PORT = 8000
OTHER_PORT = 9000
CLONE_NEWNET = 0x40000000


def setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + path)
    finally:
        os.close(fd)


@pytest.fixture
def netns():
    machine.skip_unless("bpf")
    name = "zp-inbound-%08x" % random.getrandbits(32)
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        setns("/run/netns/" + name)
        # No dummy interfaces on every kernel: the extra address goes on lo.
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", LOCAL + "/32", "dev", "lo"],
                    ["ip", "-6", "addr", "add", LOCAL6 + "/128", "dev", "lo", "nodad"]):
            subprocess.run(cmd, check=True, timeout=10)
        yield name
    finally:
        if ctypes.CDLL(None, use_errno=True).setns(home, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(home)
        subprocess.run(["ip", "netns", "del", name], check=True, timeout=10)


def get(ip, port):
    """(status, echo json or body) of GET /echo on a new connection to ip:port."""
    with socket.create_connection((ip, port), timeout=10) as s:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, (json.loads(body) if status == 200 else body)


def xff(echo):
    return [v for n, v in echo["headers"] if n.lower() == "x-forwarded-for"]


def sk_lookup_links():
    """bpftool's sk_lookup links on this network namespace."""
    ino = os.stat("/proc/self/ns/net").st_ino
    out = subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True, text=True,
                         timeout=10, check=True)
    return [l for l in json.loads(out.stdout or "[]")
            if l.get("attach_type") == "sk_lookup" and l.get("netns_ino") == ino]


@pytest.fixture
def apps(netns, tmp_path):
    """The application on APP_PORT and another listener on OTHER_PORT, all addresses."""
    made = [Backend("app", str(tmp_path), listen="0.0.0.0:%d" % APP_PORT),
            Backend("other", str(tmp_path), listen="0.0.0.0:%d" % OTHER_PORT)]
    yield made
    for b in made:
        b.stop()


def inbound_config():
    # The application is reached over loopback, which the program leaves alone: no loop.
    return base_config([listener("inbound", catch_all("app"))],
                       [cluster("app", "127.0.0.1:%d" % APP_PORT)],
                       sidecar={"inbound_listener": "inbound", "inbound_ports": [APP_PORT]})


def assert_direct(ip, port, name):
    status, echo = get(ip, port)
    assert status == 200 and echo["name"] == name and xff(echo) == [], echo


def counters():
    """zproxy_in_stats summed over CPUs, as bpftool shows it (BTF names the fields)."""
    out = subprocess.run(["bpftool", "-j", "map", "dump", "name", "zproxy_in_stats"],
                         capture_output=True, text=True, timeout=10, check=True)
    total = {}
    for entry in json.loads(out.stdout):
        for per_cpu in entry["formatted"]["values"]:
            for k, v in per_cpu["value"].items():
                total[k] = total.get(k, 0) + v
    return total


# Two workers: the listener has two SO_REUSEPORT sockets, which eBPF steering would put in
# its REUSEPORT_SOCKARRAY, and such a socket cannot join the sk_lookup SOCKMAP (EBUSY): the
# inbound listener steers with CBPF instead.
@pytest.mark.parametrize("workers", [1, 2])
def test_inbound_port_goes_through_zproxy(apps, make_proxy, workers):
    cfg = inbound_config()
    cfg["workers"] = workers
    z = make_proxy(cfg)
    if workers > 1:
        assert ('listener "inbound": eBPF steering unavailable (the sidecar\'s inbound listener: '
                "its sockets go into the sk_lookup SOCKMAP)") in z.stderr()
    assert len(sk_lookup_links()) == 1, sk_lookup_links()
    # Through zproxy: it adds X-Forwarded-For (the client's address) on the way.
    for _ in range(3):
        status, echo = get(LOCAL, APP_PORT)
        assert status == 200 and echo["name"] == "app", echo
        assert xff(echo) == [LOCAL], echo
    # Another port, and the inbound port on loopback, go straight to their listeners.
    assert_direct(LOCAL, OTHER_PORT, "other")
    assert_direct("127.0.0.1", APP_PORT, "app")
    # zproxy's three connections to the app and the direct one were on loopback.
    c = counters()
    assert c["steered"] == 3 and c["loopback"] >= 2 and c["assign_failed"] == 0, c
    # A clean stop closes the link: nothing stays attached, the app is reached directly.
    assert z.stop() == 0
    assert sk_lookup_links() == []
    assert_direct(LOCAL, APP_PORT, "app")


def test_sigkill_fails_open(apps, make_proxy):
    """The link is one of zproxyd's descriptors: SIGKILL closes it, so the application
    gets its port back instead of connections going to a dead listener."""
    z = make_proxy(inbound_config(), expect_rc=None)
    assert len(sk_lookup_links()) == 1
    z.kill()
    assert procs.wait_until(lambda: sk_lookup_links() == [], 5), sk_lookup_links()
    assert_direct(LOCAL, APP_PORT, "app")


def test_without_bpf_warns_and_leaves_the_port_alone(apps, make_proxy):
    z = make_proxy(inbound_config(), wrapper=procs.NO_BPF)
    err = z.stderr()
    assert "sidecar: inbound interception unavailable (" in err, err
    assert "CAP_BPF" in err and "iptables -t nat -A PREROUTING" in err, err
    assert sk_lookup_links() == []
    assert_direct(LOCAL, APP_PORT, "app")


def test_ipv6_listener_takes_ipv6(netns, tmp_path, make_proxy):
    """The listener's family decides: an IPv6 inbound listener takes IPv6 connections, and
    IPv4 ones to the same port go to the application."""
    app = Backend("app", str(tmp_path), listen="[::]:%d" % APP_PORT)  # dual-stack
    try:
        cfg = inbound_config()
        cfg["listeners"][0]["address"] = "[::1]:0"
        cfg["clusters"][0]["endpoints"] = ["[::1]:%d" % APP_PORT]
        make_proxy(cfg)
        status, echo = get(LOCAL6, APP_PORT)
        assert status == 200 and echo["name"] == "app" and xff(echo) == [LOCAL6], echo
        assert_direct(LOCAL, APP_PORT, "app")
        assert_direct("::1", APP_PORT, "app")
        assert counters()["no_socket"] >= 1
    finally:
        app.stop()
