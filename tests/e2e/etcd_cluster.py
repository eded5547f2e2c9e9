"""A real etcd cluster on loopback for the fleet tests (Debian etcd-server 3.4, etcdctl from
etcd-client): each member its own data dir under the test's tmp dir and its own ports,
started and stopped by PID. Fast election settings keep a leader change under a second."""

import json
import os
import shutil
import signal
import subprocess
import uuid

import pytest

from procs import free_port, stop_process, wait_until

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


class Member:
    def __init__(self, name, d, client_port, peer_port, scheme="http"):
        self.name = name
        self.data_dir = os.path.join(d, name + ".etcd")
        self.log_path = os.path.join(d, name + ".log")
        self.client_url = "%s://127.0.0.1:%d" % (scheme, client_port)
        self.peer_url = "http://127.0.0.1:%d" % peer_port
        self.proc = None


class EtcdCluster:
    def __init__(self, d, size=3, tls=None):
        """tls: {"ca", "cert", "key" (the members'), "client_cert", "client_key" (etcdctl's)}:
        clients then need https and a certificate signed by ca (--client-cert-auth)."""
        if not os.access(ETCD, os.X_OK) or not os.access(ETCDCTL, os.X_OK):
            pytest.fail("etcd / etcdctl missing: tools/install-deps installs etcd-server, "
                        "etcd-client")
        self.dir = d
        self.tls = tls
        os.makedirs(d, exist_ok=True)
        self.token = "zproxy-e2e-" + uuid.uuid4().hex[:8]
        self.members = [Member("m%d" % i, d, free_port(), free_port(), "https" if tls else "http")
                        for i in range(size)]
        self.initial = ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)
        for m in self.members:
            self.start_member(m, new=True)
        self.wait_healthy()

    @property
    def endpoints(self):
        return [m.client_url for m in self.members]

    def start_member(self, m, new=False):
        cmd = [ETCD, "--name", m.name, "--data-dir", m.data_dir,
               "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
               "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
               "--initial-cluster", self.initial, "--initial-cluster-token", self.token,
               "--initial-cluster-state", "new",
               "--heartbeat-interval", "50", "--election-timeout", "500",
               "--snapshot-count", "200"]
        if self.tls:
            cmd += ["--cert-file", self.tls["cert"], "--key-file", self.tls["key"],
                    "--trusted-ca-file", self.tls["ca"], "--client-cert-auth"]
        m.proc = subprocess.Popen(cmd, stdout=open(m.log_path, "ab"), stderr=subprocess.STDOUT)

    def stop_member(self, m, sig=signal.SIGTERM):
        if m.proc is not None:
            stop_process(m.proc, 10, sig)
            m.proc = None

    def stop(self):
        for m in self.members:
            self.stop_member(m)
        # The data; the members' logs stay in pytest's tmp dir for a failure's post-mortem.
        for m in self.members:
            shutil.rmtree(m.data_dir, ignore_errors=True)

    def ctl(self, *args, endpoints=None, check=True, input=None):
        r = subprocess.run([ETCDCTL, "--endpoints", ",".join(endpoints or self.endpoints),
                            "--dial-timeout", "2s", "--command-timeout", "5s"] + self._tls_args()
                           + list(args),
                           capture_output=True, text=True, timeout=20, input=input,
                           env=dict(os.environ, ETCDCTL_API="3"))
        if check:
            assert r.returncode == 0, "etcdctl %s: %s%s" % (" ".join(args), r.stdout, r.stderr)
        return r

    def restore(self, snapshot):
        """Every member stopped, its data replaced by `snapshot` (etcdctl snapshot save), and
        started again: the whole cluster goes back to the snapshot's revision."""
        for m in self.members:
            self.stop_member(m)
        for m in self.members:
            shutil.rmtree(m.data_dir, ignore_errors=True)
            r = subprocess.run([ETCDCTL, "snapshot", "restore", snapshot, "--name", m.name,
                                "--data-dir", m.data_dir, "--initial-cluster", self.initial,
                                "--initial-cluster-token", self.token,
                                "--initial-advertise-peer-urls", m.peer_url],
                               capture_output=True, text=True, timeout=30,
                               env=dict(os.environ, ETCDCTL_API="3"))
            assert r.returncode == 0, r.stdout + r.stderr
        for m in self.members:
            self.start_member(m)
        self.wait_healthy()

    def _tls_args(self):
        if not self.tls:
            return []
        return ["--cacert", self.tls["ca"], "--cert", self.tls["client_cert"],
                "--key", self.tls["client_key"]]

    def live(self):
        return [m for m in self.members if m.proc is not None and m.proc.poll() is None]

    def wait_healthy(self, timeout=20):
        live = self.live()
        ok = wait_until(lambda: self.ctl("endpoint", "health", endpoints=[m.client_url for m in live],
                                         check=False).returncode == 0, timeout, 0.2)
        assert ok, "etcd not healthy within %ds" % timeout

    def leader(self):
        """The member that is the raft leader now."""
        r = self.ctl("endpoint", "status", "-w", "json",
                     endpoints=[m.client_url for m in self.live()])
        statuses = json.loads(r.stdout)
        for s in statuses:
            st = s["Status"]
            if st["leader"] == st["header"]["member_id"]:
                return next(m for m in self.members if m.client_url == s["Endpoint"])
        raise AssertionError("no leader among %s" % r.stdout)

    def revision(self):
        r = self.ctl("endpoint", "status", "-w", "json", endpoints=[self.live()[0].client_url])
        return int(json.loads(r.stdout)[0]["Status"]["header"]["revision"])
