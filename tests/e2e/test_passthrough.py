"""tcp_proxy pass-through modes (sockmap, splice, copy), each exercised end to end: 1 MB of
random bytes each way, half-close in each direction, RST from either side, a client that
sends before the upstream connection exists, the idle timeout; sockmap leaves no map
entries after 1000 connections and costs the data plane almost no CPU; sockmap without BPF
falls back to splice with one log line. IPv6 (and IPv6 client to IPv4 upstream) in sockmap
mode, map entries matched to sockets by cookie (bpftool vs. ss); pins of the old 4-tuple
layout replaced; no entry left after a data plane SIGKILL; live tunnels and their entries
kept across a zproxyd restart with adoption. sockmap cases fail when zproxy falls back from
sockmap on a machine that has it (machine.py, the canary) and are skipped only where it lacks it.
"""

import hashlib
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

import machine
from procs import (NO_BPF, SIGKILLED, base_config, cpu_seconds, dataplane_restarted, gone_or_zombie,
                   wait_until)
from test_metrics import scrape

BPFTOOL = "/usr/sbin/bpftool"
MODES = ["sockmap", "splice", "copy"]
PAYLOAD = random.Random(7).randbytes(1 << 20)


class Upstream:
    """A TCP server with one behaviour per test:
      echo_hash  read to EOF, answer SHA-256 of it + PAYLOAD, then FIN
      banner     send PAYLOAD + FIN at once, then read to EOF (digest in .digests)
      rst        read one byte, then reset
      sink       read and discard to EOF (bulk transfers)
      echo       echo everything back until EOF
    slow_first_connect: the listen backlog is held full for the first connection attempt
    (a filler connection nobody accepts), so the proxy's SYN is dropped and its connect
    completes only on the retransmit about 1 s later."""

    def __init__(self, mode="echo_hash", slow_first_connect=False, host="127.0.0.1"):
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.bind((host, 0))
        port = self.sock.getsockname()[1]
        self.addr = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
        self.digests = []
        self.resets = 0
        self.eofs = 0
        self.filler = None
        if slow_first_connect:
            self.sock.listen(0)
            self.filler = socket.create_connection(self.sock.getsockname())
        else:
            self.sock.listen(128)
        threading.Thread(target=self._serve, daemon=True).start()

    def release_backlog(self):
        """Accept and drop the filler: the next SYN retransmit gets through."""
        c, _ = self.sock.accept()
        c.close()
        self.filler.close()

    def _serve(self):
        if self.filler is not None:
            return  # the test calls release_backlog, then serve_after_release
        self._accept_loop()

    def serve_after_release(self):
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def _read_to_eof(self, c):
        h = hashlib.sha256()
        try:
            while True:
                b = c.recv(1 << 16)
                if not b:
                    self.eofs += 1
                    break
                h.update(b)
        except ConnectionResetError:
            self.resets += 1
        return h.digest()

    def _handle(self, c):
        with c:
            if self.mode == "rst":
                c.recv(1)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif self.mode == "echo_hash":
                d = self._read_to_eof(c)
                c.sendall(d + PAYLOAD)
                c.shutdown(socket.SHUT_WR)
            elif self.mode == "banner":
                c.sendall(PAYLOAD)
                c.shutdown(socket.SHUT_WR)
                self.digests.append(self._read_to_eof(c))
            elif self.mode == "sink":
                self.digests.append(self._read_to_eof(c))
            elif self.mode == "echo":
                try:
                    while True:
                        b = c.recv(1 << 16)
                        if not b:
                            self.eofs += 1
                            break
                        c.sendall(b)
                except ConnectionResetError:
                    self.resets += 1

    def close(self):
        self.sock.close()


def _config(upstream_addr, mode, listen="127.0.0.1:0", **tcp):
    tp = {"cluster": "db", "mode": mode}
    tp.update(tcp)
    return base_config([{"name": "db", "address": listen, "tcp_proxy": tp}],
                       [{"name": "db", "endpoints": [upstream_addr]}])


def _proxy(make_proxy, upstream, mode, allow_stderr=(), listen="127.0.0.1:0", **tcp):
    z = make_proxy(_config(upstream.addr, mode, listen, **tcp), allow_stderr=allow_stderr)
    if mode == "sockmap":
        fams = scrape(z)
        _require_sockmap(z)
    return z


def _require_sockmap(z):
    """A tcp_proxy listener asked for sockmap must get it where the machine has it."""
    used = scrape(z)["zproxy_listener_passthrough_mode"].samples[0][1]["mode"]
    if used != "sockmap":
        machine.fallback("sockmap", "pass-through mode sockmap -> %s" % used)


def _recv_all(s, limit=1 << 24):
    got = bytearray()
    while len(got) < limit:
        b = s.recv(1 << 16)
        if not b:
            break
        got += b
    return bytes(got)


def send_megabyte_expect_echo_hash(s, seed):
    """Sends 1 MB of seeded random bytes on s to an echo_hash Upstream, shuts the write side,
    reads to EOF and closes s: the upstream's answer must be the sha256 of exactly those
    bytes (client -> upstream intact, FIN forwarded after them), then PAYLOAD (upstream ->
    client intact, its FIN forwarded)."""
    data = random.Random(seed).randbytes(1 << 20)
    with s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = _recv_all(s)
    assert got[:32] == hashlib.sha256(data).digest()
    assert got[32:] == PAYLOAD


def _mode_count(z, mode):
    return scrape(z)["zproxy_passthrough_connections_total"].value(mode=mode)


@pytest.mark.parametrize("mode", MODES)
def test_megabyte_each_way_client_half_close(make_proxy, mode):
    """The client sends 1 MB and shuts its write side; it still receives everything."""
    up = Upstream("echo_hash")
    z = _proxy(make_proxy, up, mode)
    send_megabyte_expect_echo_hash(socket.create_connection(("127.0.0.1", z.port), timeout=10), 1)
    assert _mode_count(z, mode) == 1
    # Counted when the connection ends (sockmap: from tcp_info, the bytes never pass by).
    assert wait_until(lambda: scrape(z)["zproxy_tcp_proxy_bytes_total"].value() >= 2 << 20, 5)
    if mode == "sockmap":
        fams = scrape(z)
        assert fams["zproxy_sockmap_spliced_bytes_total"].value() >= 2 << 20
        assert fams["zproxy_sockmap_stragglers_total"].value() == 0


@pytest.mark.parametrize("mode", MODES)
def test_upstream_half_close_client_can_still_send(make_proxy, mode):
    """The upstream sends 1 MB and its FIN first: the client sees all of it and EOF, and
    then sends 1 MB of its own, which the upstream receives intact."""
    up = Upstream("banner")
    z = _proxy(make_proxy, up, mode)
    s = socket.create_connection(("127.0.0.1", z.port), timeout=10)
    assert _recv_all(s) == PAYLOAD  # ends with EOF: the upstream's FIN was forwarded
    data = random.Random(2).randbytes(1 << 20)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    assert wait_until(lambda: up.digests, 5)
    assert up.digests == [hashlib.sha256(data).digest()]
    assert s.recv(1) == b""
    s.close()


@pytest.mark.parametrize("mode", MODES)
def test_upstream_reset_reaches_client(make_proxy, mode):
    up = Upstream("rst")
    z = _proxy(make_proxy, up, mode)
    s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
    s.sendall(b"hello")
    t0 = time.monotonic()
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    assert time.monotonic() - t0 < 3
    s.close()


@pytest.mark.parametrize("mode", MODES)
def test_client_reset_reaches_upstream(make_proxy, mode):
    up = Upstream("echo")
    z = _proxy(make_proxy, up, mode)
    s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
    s.sendall(b"ping")
    assert s.recv(4) == b"ping"  # the pair is established and moving bytes
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    # The upstream sees a reset (or at least a close) promptly, never a hang.
    assert wait_until(lambda: up.resets + up.eofs == 1, 3)
    assert wait_until(lambda: scrape(z)["zproxy_connections_open"].value() == 0, 3)


@pytest.mark.parametrize("mode", MODES)
def test_client_sends_before_upstream_is_connected(make_proxy, mode):
    """The proxy's first SYN to the upstream is dropped (full backlog), so its connect
    completes about 1 s after the client has sent everything and its FIN."""
    up = Upstream("echo_hash", slow_first_connect=True)
    z = _proxy(make_proxy, up, mode)
    data = random.Random(3).randbytes(256 << 10)
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", z.port), timeout=10)
    s.sendall(data)  # fits the proxy's receive buffer: done long before the upstream is up
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.2)
    up.release_backlog()
    up.serve_after_release()
    got = _recv_all(s)
    s.close()
    assert time.monotonic() - t0 > 0.9, "the upstream connect was not delayed"
    assert got[:32] == hashlib.sha256(data).digest()
    assert got[32:] == PAYLOAD


@pytest.mark.parametrize("mode", MODES)
def test_idle_timeout_closes_both_sides(make_proxy, mode):
    up = Upstream("echo")
    z = _proxy(make_proxy, up, mode, idle_timeout_ms=400)
    s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
    # Traffic keeps it open past the timeout...
    for _ in range(6):
        s.sendall(b"tick")
        assert s.recv(4) == b"tick"
        time.sleep(0.15)
    # ...and silence closes it.
    t0 = time.monotonic()
    try:
        assert s.recv(1) == b""
    except ConnectionResetError:
        pass
    assert 0.2 < time.monotonic() - t0 < 3
    assert wait_until(lambda: up.eofs + up.resets == 1, 3)
    s.close()


# IPv6 in sockmap mode: the maps key sockets by cookie, so an IPv6 client is spliced like an
# IPv4 one, to an IPv6 upstream or an IPv4 one, with no fallback to splice.
IPV6_UPSTREAMS = ["::1", "127.0.0.1"]


def _ipv6_proxy(make_proxy, upstream):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    return _proxy(make_proxy, upstream, "sockmap", listen="[::1]:0")


def _ipv6_client(z):
    return socket.create_connection(("::1", z.port), timeout=10)


def _assert_sockmap_only(z, connections):
    fams = scrape(z)
    assert fams["zproxy_passthrough_connections_total"].value(mode="sockmap") == connections
    assert fams["zproxy_passthrough_fallbacks_total"].value() == 0
    assert fams["zproxy_sockmap_stragglers_total"].value() == 0


@pytest.mark.parametrize("upstream_host", IPV6_UPSTREAMS)
def test_ipv6_sockmap_megabyte_each_way_client_half_close(make_proxy, upstream_host):
    up = Upstream("echo_hash", host=upstream_host)
    z = _ipv6_proxy(make_proxy, up)
    send_megabyte_expect_echo_hash(_ipv6_client(z), 11)
    _assert_sockmap_only(z, 1)
    # The bytes went through the verdict program, not through the data plane.
    assert scrape(z)["zproxy_sockmap_spliced_bytes_total"].value() >= 2 << 20


@pytest.mark.parametrize("upstream_host", IPV6_UPSTREAMS)
def test_ipv6_sockmap_upstream_half_close(make_proxy, upstream_host):
    up = Upstream("banner", host=upstream_host)
    z = _ipv6_proxy(make_proxy, up)
    s = _ipv6_client(z)
    assert _recv_all(s) == PAYLOAD
    data = random.Random(12).randbytes(1 << 20)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    assert wait_until(lambda: up.digests, 5)
    assert up.digests == [hashlib.sha256(data).digest()]
    assert s.recv(1) == b""
    s.close()
    _assert_sockmap_only(z, 1)


@pytest.mark.parametrize("upstream_host", IPV6_UPSTREAMS)
def test_ipv6_sockmap_resets_both_ways(make_proxy, upstream_host):
    rst = Upstream("rst", host=upstream_host)
    echo = Upstream("echo", host=upstream_host)
    cfg = base_config([{"name": "rst", "address": "[::1]:0",
                        "tcp_proxy": {"cluster": "rst", "mode": "sockmap"}},
                       {"name": "echo", "address": "[::1]:0",
                        "tcp_proxy": {"cluster": "echo", "mode": "sockmap"}}],
                      [{"name": "rst", "endpoints": [rst.addr]},
                       {"name": "echo", "endpoints": [echo.addr]}])
    z = make_proxy(cfg)
    _require_sockmap(z)  # before the map reads below
    # The upstream resets: the client sees it promptly.
    s = socket.create_connection(("::1", z.ports["rst"]), timeout=5)
    s.sendall(b"hello")
    t0 = time.monotonic()
    try:
        assert s.recv(10) == b""
    except ConnectionResetError:
        pass
    assert time.monotonic() - t0 < 3
    s.close()
    # The client resets a pair that is moving bytes: the upstream sees it.
    s = socket.create_connection(("::1", z.ports["echo"]), timeout=5)
    s.sendall(b"ping")
    assert s.recv(4) == b"ping"
    if shutil.which("ss"):
        # The maps name sockets by cookie, which `ss -e` prints as sk:<hex>: the client's
        # socket and the upstream's in the proxy are each other's peer.
        client_side = _ss_cookies("sport = :%d" % z.ports["echo"])
        upstream_side = _ss_cookies("dport = :%d" % int(echo.addr.rsplit(":", 1)[1]))
        assert len(client_side) == len(upstream_side) == 1
        peers = {_cookie(e["key"]): _cookie(e["value"]) for e in _bpf_entries(z, "zproxy_pair_peer")}
        assert peers == {client_side[0]: upstream_side[0], upstream_side[0]: client_side[0]}
        armed = {_cookie(e["key"]) for e in _bpf_entries(z, "zproxy_splice_pairs")}
        assert armed == set(peers)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    assert wait_until(lambda: echo.resets + echo.eofs == 1, 3)
    assert wait_until(lambda: scrape(z)["zproxy_connections_open"].value() == 0, 3)
    _assert_sockmap_only(z, 2)
    assert _bpf_entries(z, "zproxy_splice_pairs") == []
    assert _bpf_entries(z, "zproxy_pair_peer") == []


@pytest.mark.skipif(not os.access(BPFTOOL, os.X_OK), reason="needs bpftool")
def test_pins_of_the_old_4tuple_layout_are_replaced(make_proxy, tmp_path):
    """An older zproxy pinned zproxy_splice_pairs keyed by a 16-byte IPv4 4-tuple and
    zproxy_pair_peer as a HASH of 4-tuples: zproxyd replaces both (one log line) and
    sockmap works on the new maps."""
    machine.skip_unless("bpf", "bpffs")
    base = "/sys/fs/bpf/zproxy-e2e-old-%d-%s" % (os.getpid(), tmp_path.name[-8:])
    os.makedirs(base)
    for name, spec in (("zproxy_splice_pairs", "type sockhash key 16 value 8"),
                       ("zproxy_pair_peer", "type hash key 16 value 16")):
        subprocess.run([BPFTOOL, "map", "create", base + "/" + name] + spec.split() +
                       ["entries", "65536", "name", name[:15]], check=True, timeout=20)
    up = Upstream("echo_hash")
    cfg = _config(up.addr, "sockmap")
    cfg["bpffs_path"] = base
    z = make_proxy(cfg)
    lines = [l for l in z.stderr().splitlines() if "replaced incompatible" in l]
    assert len(lines) == 1, z.stderr()
    assert ("zproxy_splice_pairs (key bytes 16, now 8)" in lines[0] and
            "zproxy_pair_peer (type hash, now sockhash; key bytes 16, now 8; "
            "value bytes 16, now 8)" in lines[0]), lines[0]
    for name in ("zproxy_splice_pairs", "zproxy_pair_peer"):
        out = subprocess.run([BPFTOOL, "-j", "map", "show", "pinned", base + "/" + name],
                             capture_output=True, text=True, timeout=20, check=True)
        info = json.loads(out.stdout)
        assert (info["type"], info["bytes_key"], info["bytes_value"]) == ("sockhash", 8, 8)
    send_megabyte_expect_echo_hash(socket.create_connection(("127.0.0.1", z.port), timeout=10), 13)
    assert _mode_count(z, "sockmap") == 1


def _cookie(hex_bytes):
    """A SOCKHASH key or value as bpftool prints it (no BTF: bytes, little endian)."""
    return int.from_bytes(bytes(int(b, 16) for b in hex_bytes), "little")


def _ss_cookies(ss_filter):
    out = subprocess.run(["ss", "-tneH", "state", "established", ss_filter],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return [int(m, 16) for m in re.findall(r"\bsk:([0-9a-f]+)", out)]


def _bpf_entries(z, name):
    out = subprocess.run([BPFTOOL, "-j", "map", "dump", "pinned",
                          z.config["bpffs_path"] + "/" + name],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.skipif(not os.access(BPFTOOL, os.X_OK), reason="needs bpftool")
def test_sockmap_thousand_short_connections_leave_no_entries(make_proxy):
    up = Upstream("echo")
    z = _proxy(make_proxy, up, "sockmap")
    for i in range(1000):
        s = socket.create_connection(("127.0.0.1", z.port), timeout=10)
        msg = b"m%d" % i
        s.sendall(msg)
        assert s.recv(64) == msg
        if i % 2:
            s.shutdown(socket.SHUT_WR)  # clean close, FIN first
            assert s.recv(1) == b""
        else:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    assert wait_until(lambda: scrape(z)["zproxy_connections_open"].value() == 0, 5)
    assert _mode_count(z, "sockmap") == 1000
    assert _bpf_entries(z, "zproxy_splice_pairs") == []
    assert _bpf_entries(z, "zproxy_pair_peer") == []


def _bulk_cpu(z, up, megabytes):
    """Data plane CPU seconds while `megabytes` go client -> upstream."""
    [pid] = z.dataplane_pids()
    block = b"\0" * (1 << 20)
    s = socket.create_connection(("127.0.0.1", z.port), timeout=20)
    before = cpu_seconds(pid)
    for _ in range(megabytes):
        s.sendall(block)
    s.shutdown(socket.SHUT_WR)
    n = len(up.digests)
    assert wait_until(lambda: len(up.digests) > n, 20)
    used = cpu_seconds(pid) - before
    s.close()
    return used


def test_sockmap_data_plane_cpu_near_zero(make_proxy):
    megabytes = 1024
    up = Upstream("sink")
    sockmap = _proxy(make_proxy, up, "sockmap")
    copy = make_proxy(_config(up.addr, "copy"))
    cpu_sockmap = _bulk_cpu(sockmap, up, megabytes)
    cpu_copy = _bulk_cpu(copy, up, megabytes)
    print("data plane CPU for %d MB: sockmap %.3f s, copy %.3f s" % (megabytes, cpu_sockmap,
                                                                       cpu_copy))
    assert up.digests[-2] == up.digests[-1] == hashlib.sha256(b"\0" * (megabytes << 20)).digest()
    assert cpu_copy > 0.1, "copy mode did not cost anything measurable: the test is broken"
    assert cpu_sockmap <= 0.1 * cpu_copy + 0.03


def _without_bpf_caps():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop CAP_BPF")
    return NO_BPF


def test_sockmap_without_bpf_falls_back_to_splice(make_proxy):
    up = Upstream("echo_hash")
    z = make_proxy(_config(up.addr, "sockmap"), wrapper=_without_bpf_caps())
    lines = [l for l in z.stderr().splitlines() if "pass-through mode sockmap requested" in l]
    assert len(lines) == 1 and "using splice" in lines[0], z.stderr()
    info = scrape(z)["zproxy_dataplane_info"].samples[0][1]
    assert info["sockmap"] == "0" and info["splice"] == "1"
    send_megabyte_expect_echo_hash(socket.create_connection(("127.0.0.1", z.port), timeout=10), 4)
    assert _mode_count(z, "splice") == 1


def test_info_shows_modes(make_proxy):
    up = Upstream("echo")
    z = make_proxy(_config(up.addr, "auto"))
    fams = scrape(z)
    info = fams["zproxy_dataplane_info"].samples[0][1]
    [(_, labels, _)] = fams["zproxy_listener_passthrough_mode"].samples
    assert labels["requested"] == "auto"
    assert labels["mode"] == info["passthrough_auto"]
    log = z.stderr()
    assert ("pass-through mode %s (requested auto)" % labels["mode"] in log or
            "pass-through mode auto requested, using %s" % labels["mode"] in log), log


@pytest.mark.skipif(not os.access(BPFTOOL, os.X_OK), reason="needs bpftool")
def test_sockmap_entries_removed_when_the_data_plane_exits_with_open_tunnels(make_proxy):
    """A data plane that stops (SIGTERM: drain, deadline) while sockmap tunnels are still
    open leaves no entry in either map (SIGKILL: test_sockmap_entries_gone_after_...)."""
    up = Upstream("echo")
    cfg = _config(up.addr, "sockmap")
    cfg["drain_timeout_ms"] = 300
    # The data plane, stopped from outside, exits 0 after its drain: zproxyd restarts it.
    z = make_proxy(cfg, allow_stderr=(dataplane_restarted("exited with status 0"),))
    _require_sockmap(z)
    socks = []
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
        s.sendall(b"x%d" % i)
        assert s.recv(8) == b"x%d" % i
        socks.append(s)
    assert len(_bpf_entries(z, "zproxy_pair_peer")) == 6
    time.sleep(1.2)  # past zproxyd's startup grace: an exit now is a restart, not a failed start
    [pid] = z.dataplane_pids()
    os.kill(pid, 15)
    assert wait_until(lambda: gone_or_zombie(pid), 10)
    assert _bpf_entries(z, "zproxy_pair_peer") == []
    assert _bpf_entries(z, "zproxy_splice_pairs") == []
    for s in socks:
        s.close()


def _echo_tunnels(z, n, tag):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", z.port), timeout=5)
        msg = b"%s%d" % (tag, i)
        s.sendall(msg)
        assert s.recv(64) == msg
        socks.append(s)
    return socks


def _still_echo(socks, tag):
    for i, s in enumerate(socks):
        msg = b"%s%d" % (tag, i)
        s.sendall(msg)
        assert s.recv(64) == msg


def _pair_cookies(z):
    return ({_cookie(e["key"]) for e in _bpf_entries(z, "zproxy_splice_pairs")},
            {_cookie(e["key"]): _cookie(e["value"]) for e in _bpf_entries(z, "zproxy_pair_peer")})


@pytest.mark.skipif(not os.access(BPFTOOL, os.X_OK), reason="needs bpftool")
def test_sockmap_entries_gone_after_data_plane_sigkill(make_proxy):
    """SIGKILL leaves the data plane no chance to remove anything: both maps are SOCKHASHes,
    so the kernel drops the entries of every socket the dead process held, and the data
    plane zproxyd restarts serves new tunnels on the same pinned maps."""
    up = Upstream("echo")
    z = make_proxy(_config(up.addr, "sockmap"), allow_stderr=(dataplane_restarted(SIGKILLED),))
    _require_sockmap(z)
    socks = _echo_tunnels(z, 3, b"k")
    armed, peers = _pair_cookies(z)
    assert len(armed) == len(peers) == 6
    time.sleep(1.2)  # past zproxyd's startup grace: an exit now is a restart, not a failed start
    [pid] = z.dataplane_pids()
    os.kill(pid, 9)
    assert wait_until(lambda: z.dataplane_pids() not in ([], [pid]), 10), z.stderr()[-2000:]
    assert wait_until(lambda: _pair_cookies(z) == (set(), {}), 5), _pair_cookies(z)
    for s in socks:
        s.close()  # the proxy side is gone: these saw EOF or a reset
    # The listen sockets stayed open in zproxyd: these wait in the backlog, if need be,
    # until the new data plane serves.
    fresh = _echo_tunnels(z, 2, b"n")
    armed, peers = _pair_cookies(z)
    assert len(armed) == len(peers) == 4
    for s in fresh:
        s.close()
    assert wait_until(lambda: _pair_cookies(z) == (set(), {}), 5)


@pytest.mark.skipif(not os.access(BPFTOOL, os.X_OK), reason="needs bpftool")
def test_sockmap_tunnels_survive_zproxyd_restart_with_adoption(make_proxy):
    """zproxyd is SIGKILLed and restarted: it reuses the pinned maps and adopts the data
    plane; the open tunnels keep splicing and keep their entries (nothing sweeps them)."""
    from test_adoption import _adopted, _kill_zproxyd
    from test_dataplane_sync import _pid
    up = Upstream("echo")
    z = make_proxy(_config(up.addr, "sockmap"))
    _require_sockmap(z)
    dp = _pid(z)
    socks = _echo_tunnels(z, 3, b"a")
    before = _pair_cookies(z)
    assert len(before[0]) == 6
    spliced = scrape(z)["zproxy_sockmap_spliced_bytes_total"].value()
    _kill_zproxyd(z)
    time.sleep(0.3)
    z.start()
    _adopted(z, dp)
    assert "replaced incompatible" not in z.stderr()  # the same maps, reused
    _still_echo(socks, b"b")
    assert _pair_cookies(z) == before
    assert scrape(z)["zproxy_sockmap_spliced_bytes_total"].value() > spliced
    for s in socks:
        s.close()
    assert wait_until(lambda: _pair_cookies(z) == (set(), {}), 5)
    fresh = _echo_tunnels(z, 1, b"c")
    assert len(_pair_cookies(z)[0]) == 2
    fresh[0].close()
