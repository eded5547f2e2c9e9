"""deploy/seccomp/zproxy.json: the container runtimes' default profile (Debian's
golang-github-containers-common, the one podman uses) plus exactly io_uring_setup,
io_uring_enter and io_uring_register. zproxyd and its data plane serve under it; under the
stock default, which denies io_uring, the data plane fails with the error that names the
shipped profile. Profiles are applied with tests/tools/seccomp-exec (libseccomp, as runc
would), with the capability set of deploy/systemd/zproxyd.service."""

import json
import os
import re
import shutil
import subprocess

import pytest

import httpraw
import yamlgen
from conftest import catch_all, cluster, listener
from procs import ROOT, base_config, zproxyd_path

PROFILE = os.path.join(ROOT, "deploy", "seccomp", "zproxy.json")
RUNTIME_DEFAULT = "/usr/share/containers/seccomp.json"
SECCOMP_EXEC = os.path.join(ROOT, "tests", "tools", "seccomp-exec")
IO_URING = {"io_uring_setup", "io_uring_enter", "io_uring_register"}


def _load(path):
    if not os.path.exists(path):
        pytest.fail("missing %s: run tools/install-deps (golang-github-containers-common)" % path)
    with open(path) as f:
        return json.load(f)


def _caps():
    with open(os.path.join(ROOT, "deploy", "systemd", "zproxyd.service")) as f:
        return re.search(r"^CapabilityBoundingSet=(.*)$", f.read(), re.M).group(1).split()


def _under(profile):
    try:
        import seccomp  # noqa: F401  (python3-seccomp, used by seccomp-exec)
    except ImportError:
        pytest.fail("python3-seccomp is missing: run tools/install-deps")
    return ("/usr/bin/python3", SECCOMP_EXEC, profile, "--caps", ",".join(_caps()), "--")


def _allowed(profile):
    return {n for r in profile["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}


def test_profile_is_the_runtime_default_plus_exactly_io_uring():
    ours, default = _load(PROFILE), _load(RUNTIME_DEFAULT)
    assert not IO_URING & _allowed(default), "the runtime default allows io_uring now?"
    assert default["defaultAction"] == "SCMP_ACT_ERRNO"
    extra = [r for r in ours["syscalls"] if r not in default["syscalls"]]
    assert len(extra) == 1, extra
    assert set(extra[0]["names"]) == IO_URING and extra[0]["action"] == "SCMP_ACT_ALLOW"
    assert not extra[0]["args"] and not extra[0]["includes"] and not extra[0]["excludes"]
    ours["syscalls"].remove(extra[0])
    assert ours == default


def test_zproxyd_serves_under_the_profile(make_proxy, backends):
    a = backends["a"]
    cfg = base_config([listener("web", catch_all("a"))], [cluster("a", a.addr)])
    z = make_proxy(cfg, wrapper=_under(PROFILE))
    r = httpraw.request(z.port, target="/under-seccomp")
    assert r.status == 200 and b"from a" in r.body
    for pid in [z.proc.pid] + z.dataplane_pids():
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
        assert re.search(r"^Seccomp:\s+2$", status, re.M), "pid %d has no seccomp filter" % pid
    assert "io_uring: single_issuer=" in z.stderr()
    # The runtime default allows bpf() only with CAP_SYS_ADMIN, which zproxy's capability
    # set leaves out: the BPF pieces take their fallbacks (deploy/README.md says so).
    assert "BPF health map unavailable (load health: Operation not permitted)" in z.stderr()


def test_a_profile_denying_io_uring_fails_naming_the_shipped_one(tmp_path):
    sock = "/tmp/zp-seccomp-%d" % os.getpid()
    web = listener("web", catch_all("a"))
    web["address"] = "127.0.0.1:0"
    cfg = base_config([web], [cluster("a", "127.0.0.1:1")],
                      admin_address="unix:%s/admin.sock" % sock, state_dir=str(tmp_path / "state"),
                      bpffs_path="/sys/fs/bpf/zproxy-e2e-seccomp-%d" % os.getpid())
    path = tmp_path / "c.yaml"
    path.write_text(yamlgen.dump(cfg))
    try:
        r = subprocess.run(list(_under(RUNTIME_DEFAULT)) + [zproxyd_path(), "--config", str(path)],
                           capture_output=True, text=True, timeout=30)
    finally:
        shutil.rmtree(sock, ignore_errors=True)
        shutil.rmtree(cfg["bpffs_path"], ignore_errors=True)
    assert r.returncode != 0, r.stderr
    assert "io_uring_setup failed: Function not implemented" in r.stderr, r.stderr
    assert "A seccomp filter blocks io_uring" in r.stderr, r.stderr
    assert "deploy/seccomp/zproxy.json" in r.stderr, r.stderr
