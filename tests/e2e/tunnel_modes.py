"""Helpers for the tests of WebSocket and CONNECT tunnels in each mode (Listener.tunnel_mode):
the modes, a failure when zproxy falls back from a mode this machine has (a skip only when
the canary, machine.py, finds what the mode needs missing), and the pinned pair maps read
with bpftool."""

import json
import os
import subprocess

import pytest

import machine
from test_metrics import scrape

BPFTOOL = "/usr/sbin/bpftool"
MODES = ["sockmap", "splice", "copy"]
# What a tunnel (a direct descriptor from the HTTP listener) needs for each mode.
MODE_NEEDS = {"sockmap": ("sockmap", "fd_install"), "splice": ("io_uring_splice", "fd_install"),
              "copy": ()}


def require_mode(z, mode, listener="web"):
    """Fails unless the listener's tunnels really get `mode` (skips where the machine lacks
    what the mode needs)."""
    fams = scrape(z)
    [used] = [l["mode"] for _, l, _ in fams["zproxy_listener_tunnel_mode"].samples
              if l["listener"] == listener]
    if used != mode:
        machine.fallback(MODE_NEEDS[mode],
                         "listener %s: tunnel mode %s -> %s" % (listener, mode, used))


def mode_count(z, mode):
    return scrape(z)["zproxy_passthrough_connections_total"].value(mode=mode)


def bpf_entries(z, name):
    if not os.access(BPFTOOL, os.X_OK):
        pytest.skip("needs bpftool")
    out = subprocess.run([BPFTOOL, "-j", "map", "dump", "pinned",
                          z.config["bpffs_path"] + "/" + name],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def assert_paired_now(z):
    """Both sockets of one tunnel are in the SOCKHASH (and in the peer table) right now."""
    assert len(bpf_entries(z, "zproxy_pair_peer")) == 2
    assert len(bpf_entries(z, "zproxy_splice_pairs")) == 2


def assert_no_pairs(z):
    assert bpf_entries(z, "zproxy_pair_peer") == []
    assert bpf_entries(z, "zproxy_splice_pairs") == []
