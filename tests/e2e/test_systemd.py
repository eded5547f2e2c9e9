"""deploy/systemd/zproxyd.service and the notify protocol: `systemd-analyze verify` accepts
the unit; zproxyd under the unit's CapabilityBoundingSet and NoNewPrivileges takes no
fallback (every capability it needs is in the set); and zproxyd speaks sd_notify to a Python
datagram socket standing in for systemd's: READY=1 only once the listener serves, WATCHDOG=1
at half of WATCHDOG_USEC, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM."""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config, free_port, wait_until

UNIT = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "systemd", "zproxyd.service")


def _unit_text():
    with open(UNIT) as f:
        return f.read()


def _unit_value(key):
    m = re.search(r"^%s=(.*)$" % re.escape(key), _unit_text(), re.M)
    assert m, "%s= missing from %s" % (key, UNIT)
    return m.group(1).strip()


def test_unit_passes_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd; tools/install-deps)")
    # verify checks that ExecStart's binary exists: point it at the one under test.
    from procs import zproxyd_path
    unit = tmp_path / "zproxyd.service"
    unit.write_text(_unit_text().replace("/usr/local/bin/zproxyd", zproxyd_path()))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                       timeout=60)
    # Parse problems ("Unknown key", "Failed to parse ...") are printed, exit status 0.
    problems = [l for l in (r.stdout + r.stderr).splitlines() if "zproxyd.service" in l]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
    for key, want in (("Type", "notify"), ("ExecReload", "/bin/kill -HUP $MAINPID"),
                      ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                      ("RuntimeDirectory", "zproxy"), ("StateDirectory", "zproxy")):
        assert _unit_value(key) == want, key
    assert int(_unit_value("LimitNOFILE")) >= 65536


def test_capability_bounding_set_is_enough(make_proxy, backends, tmp_path):
    """zproxyd with only the unit's capabilities (and no_new_privs) loads and pins every BPF
    piece, drops the data plane's privileges and serves: no fallback warning at all."""
    caps = _unit_value("CapabilityBoundingSet").split()
    assert "CAP_SYS_ADMIN" not in caps
    bounding = "-all," + ",".join("+" + c[len("CAP_"):].lower() for c in caps)
    wrapper = ("setpriv", "--bounding-set", bounding, "--inh-caps", "-all", "--no-new-privs")
    a = backends["a"]
    cfg = base_config([listener("web", catch_all("app"))], [cluster("app", a.addr)])
    z = make_proxy(cfg, wrapper=wrapper)
    r = httpraw.request(z.port, target="/x")
    assert r.status == 200 and b"from a" in r.body
    err = z.stderr()
    assert "health: BPF map zproxy_health" in err, err
    assert "sockmap splicing available" in err, err
    assert "privileges: dropped every capability" in err, err
    warns = [l for l in err.splitlines() if " warn: " in l]
    assert not warns, "\n".join(warns)
    # zproxyd itself holds nothing outside the set.
    with open("/proc/%d/status" % z.proc.pid) as f:
        bnd = int(re.search(r"^CapBnd:\s*([0-9a-f]+)", f.read(), re.M).group(1), 16)
    names = subprocess.run(["capsh", "--decode=%x" % bnd], capture_output=True, text=True)
    if names.returncode == 0:
        held = set(names.stdout.split("=", 1)[1].strip().upper().split(","))
        assert held == set(caps), held ^ set(caps)


class FakeSystemd:
    """An abstract AF_UNIX datagram socket like systemd's $NOTIFY_SOCKET; records each
    message with its arrival time, and runs `on_ready` when READY=1 first arrives."""

    def __init__(self, on_ready=None):
        self.name = "@zproxy-e2e-notify-%d-%d" % (os.getpid(), id(self))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic time, text)
        self.on_ready = on_ready
        self.ready_check = None
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            text = data.decode()
            if "READY=1" in text and self.ready_check is None and self.on_ready:
                # At once, before recording: was the listener serving when READY=1 came?
                self.ready_check = self.on_ready()
            with self.lock:
                self.messages.append((time.monotonic(), text))

    def texts(self):
        with self.lock:
            return [t for _, t in self.messages]

    def count(self, what):
        return sum(1 for t in self.texts() if what in t.split("\n"))

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


def test_notify_protocol(make_proxy, backends):
    a = backends["a"]
    web = listener("web", catch_all("app"))
    port = free_port()
    web["address"] = "127.0.0.1:%d" % port  # known before the start, for the READY check
    cfg = base_config([web], [cluster("app", a.addr)])

    def served():
        try:
            return httpraw.request(port, target="/when-ready", timeout=2).status
        except Exception as e:  # reported by the assertion below
            return repr(e)

    fake = FakeSystemd(on_ready=served)
    try:
        # 400 ms watchdog: pings every 200 ms. WATCHDOG_PID is left out (env keeps the pid,
        # but it is not known before the start).
        wrapper = ("env", "NOTIFY_SOCKET=" + fake.name, "WATCHDOG_USEC=400000")
        z = make_proxy(cfg, wrapper=wrapper)
        assert wait_until(lambda: fake.count("READY=1") >= 1, 5), fake.texts()
        assert fake.ready_check == 200, "READY=1 came before the listener served: %r" % (
            fake.ready_check,)
        # Watchdog pings may come first (systemd's watchdog runs during start-up too).
        first = [t for t in fake.texts() if t != "WATCHDOG=1"][0]
        assert first.startswith("READY=1\nSTATUS=data plane pid "), fake.texts()
        assert wait_until(lambda: fake.count("WATCHDOG=1") >= 4, 3), fake.texts()
        with fake.lock:
            pings = [t for t, m in fake.messages if m == "WATCHDOG=1"]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert all(0.1 < g < 0.35 for g in gaps), gaps  # half of 400 ms
        # The data plane did not inherit systemd's variables.
        for pid in z.dataplane_pids():
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = f.read()
            assert b"NOTIFY_SOCKET" not in env and b"WATCHDOG_USEC" not in env

        # SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
        n_ready = fake.count("READY=1")
        z.proc.send_signal(signal.SIGHUP)
        assert wait_until(lambda: fake.count("READY=1") > n_ready, 5), fake.texts()
        texts = fake.texts()
        reloading = [i for i, t in enumerate(texts) if t.startswith("RELOADING=1\n")]
        assert len(reloading) == 1 and "MONOTONIC_USEC=" in texts[reloading[0]], texts
        assert reloading[0] < max(i for i, t in enumerate(texts) if t.startswith("READY=1")), texts

        # SIGTERM: STOPPING=1 as the drain starts.
        z.proc.send_signal(signal.SIGTERM)
        assert z.proc.wait(15) == 0, z.stderr()
        assert fake.count("STOPPING=1") == 1, fake.texts()
    finally:
        fake.close()


def test_no_notify_socket_means_no_messages_and_no_errors(make_proxy, backends):
    """Without $NOTIFY_SOCKET nothing is sent and nothing is logged about systemd."""
    cfg = base_config([listener("web", catch_all("app"))], [cluster("app", backends["a"].addr)])
    z = make_proxy(cfg)
    assert httpraw.request(z.port, target="/").status == 200
    assert "systemd" not in z.stderr()


def test_unreachable_notify_socket_is_a_warning_not_silence(make_proxy, backends):
    cfg = base_config([listener("web", catch_all("app"))], [cluster("app", backends["a"].addr)])
    wrapper = ("env", "NOTIFY_SOCKET=@zproxy-e2e-nobody-listens-%d" % os.getpid())
    z = make_proxy(cfg, wrapper=wrapper)
    assert wait_until(lambda: "sd_notify to @zproxy-e2e-nobody-listens" in z.stderr(), 5), \
        z.stderr()
