"""zproxyd --check and startup with good and bad configs."""

import os
import subprocess

import pytest

import procs
import yamlgen
from conftest import catch_all, cluster, listener
from procs import base_config, run_check


def _write(tmp_path, cfg, name="c.yaml"):
    p = tmp_path / name
    p.write_text(cfg if isinstance(cfg, str) else yamlgen.dump(cfg))
    return str(p)


def _good():
    return base_config([listener("web", catch_all("app"))], [cluster("app", "127.0.0.1:3000")],
                       admin_address="unix:/tmp/zp-check/admin.sock")


@pytest.mark.parametrize("name", ["zproxy.yaml", "sidecar.yaml"])
def test_check_accepts_example_config(name):
    example = os.path.join(procs.ROOT, "examples", name)
    if not os.path.exists(example):
        pytest.skip("no examples/%s" % name)
    r = run_check(example)
    assert r.returncode == 0, r.stderr


def test_check_accepts_generated_config(tmp_path):
    r = run_check(_write(tmp_path, _good()))
    assert r.returncode == 0, r.stderr


BAD = {
    "unknown_key": ("listeners.0.routes.0.match", "prefx",
                    lambda c: c["listeners"][0]["routes"][0]["match"].update(prefx="/")),
    "missing_cluster": ("cluster", "nope",
                        lambda c: c["listeners"][0]["routes"][0].update(cluster="nope")),
    "bad_listener_address": ("address", "address",
                             lambda c: c["listeners"][0].update(address="127.0.0.1:99999")),
    "bad_endpoint_address": ("endpoints", "address",
                             lambda c: c["clusters"][0].update(endpoints=["not-an-address"])),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_check_rejects_naming_the_field(tmp_path, case):
    _, word, mutate = BAD[case]
    cfg = _good()
    mutate(cfg)
    r = run_check(_write(tmp_path, cfg))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert word in r.stderr, "error does not name %r:\n%s" % (word, r.stderr)


def test_refuses_to_start_with_bad_config(tmp_path):
    cfg = _good()
    cfg["listeners"][0]["routes"][0]["cluster"] = "nope"
    r = subprocess.run([procs.zproxyd_path(), "--config", _write(tmp_path, cfg)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode != 0
    assert "nope" in r.stderr


def test_check_rejects_unparsable_yaml(tmp_path):
    r = run_check(_write(tmp_path, "listeners: [ {name: web\n"))
    assert r.returncode == 1
    assert r.stderr.strip()
