"""When io_uring is blocked, the data plane must fail with a message naming the cause."""

import os
import subprocess

import pytest

import procs
import yamlgen
from conftest import catch_all, cluster, listener
from procs import base_config


def _deny_tool():
    path = procs.binary("ZPROXY_DENY_IO_URING", "tests/tools/deny-io-uring")
    if not os.path.exists(path):
        pytest.fail("missing %s: run `bazel build //tests/tools:deny-io-uring`" % path)
    return path


def _dataplane_path():
    return os.path.join(os.path.dirname(os.path.dirname(procs.zproxyd_path())), "dataplane",
                        "zproxy-dataplane")


@pytest.mark.parametrize("errno_name", ["EPERM", "ENOSYS"])
def test_seccomp_blocked_io_uring_is_named(tmp_path, errno_name):
    # A wrapper that runs the real data plane under a seccomp filter denying io_uring,
    # as Docker's default profile does.
    wrapper = tmp_path / "dataplane-under-seccomp"
    wrapper.write_text('#!/bin/sh\nexec "%s" %s "%s" "$@"\n' %
                       (_deny_tool(), errno_name, _dataplane_path()))
    wrapper.chmod(0o755)
    port = procs.free_port()
    web = listener("web", catch_all("app"))
    web["address"] = "127.0.0.1:%d" % port
    cfg = base_config([web],
                      [cluster("app", "127.0.0.1:1")],
                      admin_address="unix:/tmp/zp-uring/admin.sock")
    path = tmp_path / "c.yaml"
    path.write_text(yamlgen.dump(cfg))
    r = subprocess.run([procs.zproxyd_path(), "--config", str(path), "--dataplane", str(wrapper)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stderr
    assert "io_uring_setup failed" in r.stderr, r.stderr
    assert "seccomp" in r.stderr, r.stderr
    assert "io_uring_setup, io_uring_enter and io_uring_register" in r.stderr, r.stderr
    assert "deploy/seccomp/zproxy.json" in r.stderr, r.stderr
