"""zproxyctl helpers for the Admin API tests."""

import json
import os
import subprocess

import pytest

import procs


def zproxyctl_path():
    """$ZPROXYCTL, else beside the zproxyd under test (../tools), else bazel-bin."""
    named = os.environ.get("ZPROXYCTL", "")
    if named and not os.access(named, os.X_OK):
        # tools/test names the one it built: a missing one is a broken run, not a skip.
        pytest.fail("ZPROXYCTL=%s is not an executable (bazel build //tools:zproxyctl)" % named)
    cands = [os.environ.get("ZPROXYCTL", ""),
             os.path.join(os.path.dirname(os.path.dirname(procs.zproxyd_path())), "tools", "zproxyctl"),
             os.path.join(procs.ROOT, "bazel-bin", "tools", "zproxyctl")]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    pytest.skip("zproxyctl not built (bazel build //tools:zproxyctl)")


def admin(z):
    return z.config["admin_address"]


def run(z, *args, timeout=30):
    """zproxyctl --admin <z's socket> ARGS -> CompletedProcess (text)."""
    return subprocess.run([zproxyctl_path(), "--admin", admin(z)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout)


def ok(z, *args):
    r = run(z, *args)
    assert r.returncode == 0, "zproxyctl %s failed (%d): %s%s" % (
        " ".join(map(str, args)), r.returncode, r.stdout, r.stderr)
    return r


def jsonout(z, *args):
    return json.loads(ok(z, "-o", "json", *args).stdout)


def version(z):
    return int(jsonout(z, "config", "get")["version"])
