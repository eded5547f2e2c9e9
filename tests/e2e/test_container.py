"""The image of deploy/container/build under podman: it is built from the binaries under
test (one image per set of binaries, reused while they do not change), runs with the
shipped seccomp profile, the gateway's capability set, a read-only root and the host
network (loopback addresses only), serves traffic to a backend, answers /ready, and stops
cleanly on SIGTERM (`podman stop`): an in-flight request finishes, the exit status is 0.
Skipped, with the reason counted, only where podman cannot run containers at all."""

import hashlib
import os
import resource
import shutil
import subprocess
import threading

import pytest

import httpraw
import yamlgen
from conftest import catch_all, cluster, listener
from ctl import zproxyctl_path
from procs import ROOT, base_config, free_port, wait_until

BUILD = os.path.join(ROOT, "deploy", "container", "build")
PROFILE = os.path.join(ROOT, "deploy", "seccomp", "zproxy.json")
# deploy/kubernetes/gateway/deployment.yaml's set.
CAPS = "NET_BIND_SERVICE,SETUID,SETGID,SETPCAP,CHOWN,KILL,IPC_LOCK"


def _podman(*args, timeout=60, check=True):
    r = subprocess.run(["podman"] + list(args), capture_output=True, text=True, timeout=timeout)
    if check:
        assert r.returncode == 0, "podman %s: %s" % (" ".join(args), r.stderr)
    return r


@pytest.fixture(scope="module")
def image():
    if shutil.which("podman") is None or shutil.which("mmdebstrap") is None:
        pytest.fail("podman or mmdebstrap missing: run tools/install-deps")
    info = subprocess.run(["podman", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip("podman cannot run here: %s" % info.stderr.strip()[:300])
    # The normal build's bazel-bin (where zproxyctl is: tools/test builds it there for every
    # pass): the ASan pass reuses the same image, the image is what is under test here.
    bazel_bin = os.path.dirname(os.path.dirname(zproxyctl_path()))
    h = hashlib.sha256()
    for rel in ("controlplane/zproxyd", "dataplane/zproxy-dataplane", "tools/zproxyctl"):
        with open(os.path.join(bazel_bin, rel), "rb") as f:
            h.update(f.read())
    for path in (BUILD, os.path.join(ROOT, "deploy", "container", "zproxy.yaml")):
        with open(path, "rb") as f:
            h.update(f.read())
    tag = "localhost/zproxy-e2e:%s" % h.hexdigest()[:16]
    if _podman("image", "exists", tag, check=False).returncode != 0:
        r = subprocess.run([BUILD, "--bazel-bin", bazel_bin, "--tag", tag], capture_output=True,
                           text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-4000:]
        print(r.stdout.strip())
        # Older e2e images: only the newest is kept.
        for old in _podman("images", "--format", "{{.Repository}}:{{.Tag}}",
                           "localhost/zproxy-e2e").stdout.split():
            if old != tag:
                _podman("rmi", "-f", old, check=False)
    return tag


def test_image_serves_and_stops_cleanly_under_podman(image, backends, tmp_path, capsys):
    a = backends["a"]
    web = listener("web", catch_all("a"))
    web["address"] = "127.0.0.1:%d" % free_port()
    cfg = base_config([web], [cluster("a", a.addr)], workers=1, drain_timeout_ms=5000,
                      admin_address="unix:/run/zproxy/admin.sock", state_dir="/var/lib/zproxy",
                      dataplane_user="nobody")
    port = int(web["address"].rsplit(":", 1)[1])
    metrics = int(cfg["metrics_address"].rsplit(":", 1)[1])
    conf = tmp_path / "zproxy.yaml"
    conf.write_text(yamlgen.dump(cfg))
    # runc (crun refuses this machine's hybrid cgroups) and explicit limits: podman 4.3
    # asks for more than the hard limits allow here otherwise.
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    name = "zproxy-e2e-%d" % os.getpid()
    run = ["run", "-d", "--name", name, "--runtime", "runc", "--network", "host",
           "--ulimit", "nofile=%d:%d" % (nofile, nofile), "--ulimit", "nproc=4096:4096",
           "--security-opt", "seccomp=" + PROFILE, "--cap-drop", "all", "--cap-add", CAPS,
           "--read-only", "--tmpfs", "/run/zproxy", "--tmpfs", "/var/lib/zproxy",
           "-v", "%s:/etc/zproxy/zproxy.yaml:ro" % conf, image]
    _podman(*run)
    try:
        ok = wait_until(lambda: _ready(metrics), 20)
        logs = _podman("logs", name).stderr
        assert ok, logs[-4000:]
        r = httpraw.request(port, target="/through-the-container")
        assert r.status == 200 and b"from a" in r.body
        assert "privileges: dropped every capability" in logs and "running as nobody" in logs
        assert "io_uring: single_issuer=" in logs

        # SIGTERM with a request in flight: it finishes, zproxyd exits 0.
        mark = a.log.mark()
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=httpraw.request(port, target="/slow/1000", timeout=10)))
        t.start()
        assert a.log.wait_for_req(mark, "/slow/1000")
        _podman("stop", "-t", "20", name, timeout=40)
        t.join(10)
        assert result["r"].status == 200 and result["r"].body == b"slow 1000\n"
        state = _podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        logs = _podman("logs", name).stderr
        assert state == "0", logs[-4000:]
        assert "exiting with status 0" in logs
        errors = [l for l in logs.splitlines() if " error: " in l]
        assert not errors, errors
    finally:
        _podman("rm", "-f", name, check=False)
    size = int(_podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    with capsys.disabled():
        print("\nimage %s: %.1f MiB" % (image, size / 1048576.0))
    assert size < 200 * 1048576


def _ready(port):
    try:
        return httpraw.request(port, target="/ready", timeout=1).status == 200
    except (OSError, httpraw.ConnectionClosed):
        return False
