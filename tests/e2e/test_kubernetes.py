"""deploy/kubernetes/: each shape (gateway, node-proxy, sidecar) is loaded as the API server
would read it (plain YAML documents, no templating) and checked for consistency: the
ConfigMap key behind --config exists and passes `zproxyd --check`; every container, Service
and probe port refers to a declared port, and the config's listener and metrics ports are
those ports; the probe paths are answered 200 by a real zproxyd running that config (its
addresses moved to loopback); capabilities stay within deploy/systemd/zproxyd.service's set;
a Localhost seccomp profile names deploy/seccomp/zproxy.json; selectors match."""

import copy
import os
import re
import subprocess

import pytest
import yaml

import httpraw
from procs import ROOT, free_port, wait_until, zproxyd_path

KDIR = os.path.join(ROOT, "deploy", "kubernetes")
SHAPES = ("gateway", "node-proxy", "sidecar")
PROBE_PATHS = {"readinessProbe": "/ready", "startupProbe": "/ready", "livenessProbe": "/live"}


def _docs(shape):
    docs = []
    d = os.path.join(KDIR, shape)
    for name in sorted(os.listdir(d)):
        if name.endswith(".yaml"):
            with open(os.path.join(d, name)) as f:
                docs += [x for x in yaml.safe_load_all(f) if x]
    assert docs, "no manifests in %s" % d
    return docs


def _workload(docs):
    """(pod template metadata, pod spec) of the shape's Deployment, DaemonSet or Pod."""
    for d in docs:
        if d["kind"] in ("Deployment", "DaemonSet"):
            return d["spec"]["template"]["metadata"], d["spec"]["template"]["spec"], d
        if d["kind"] == "Pod":
            return d["metadata"], d["spec"], d
    raise AssertionError("no workload")


def _unit_caps():
    with open(os.path.join(ROOT, "deploy", "systemd", "zproxyd.service")) as f:
        m = re.search(r"^CapabilityBoundingSet=(.*)$", f.read(), re.M)
    return {c[len("CAP_"):] for c in m.group(1).split()}


def _port_of(address):
    return int(address.rsplit(":", 1)[1])


def _zproxy_config(docs, spec, container):
    """The config text --config points at, through the volume mount and ConfigMap item."""
    args = container["args"]
    path = args[args.index("--config") + 1]
    mount = [m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/")]
    assert len(mount) == 1, "no volume mounted at %s" % os.path.dirname(path)
    vol = [v for v in spec["volumes"] if v["name"] == mount[0]["name"]][0]
    cm_name = vol["configMap"]["name"]
    rel = path[len(mount[0]["mountPath"]) + 1:]
    items = vol["configMap"].get("items")
    key = [i["key"] for i in items if i["path"] == rel][0] if items else rel
    cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == cm_name]
    assert cms, "ConfigMap %s is not in the shape's manifests" % cm_name
    assert key in cms[0]["data"], "ConfigMap %s has no key %s" % (cm_name, key)
    return cms[0]["data"][key]


def _check(tmp_path, text):
    p = tmp_path / "check.yaml"
    p.write_text(text)
    return subprocess.run([zproxyd_path(), "--config", str(p), "--check"],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("shape", SHAPES)
def test_manifests_are_consistent(shape, tmp_path):
    docs = _docs(shape)
    meta, spec, workload = _workload(docs)
    zp = [c for c in spec["containers"] if c["name"] == "zproxy"]
    assert len(zp) == 1
    c = zp[0]
    text = _zproxy_config(docs, spec, c)
    r = _check(tmp_path, text)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(text)

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for l in cfg["listeners"]:
        assert _port_of(l["address"]) in ports.values(), "listener %s port not declared" % l
    assert ports.get("metrics") == _port_of(cfg["metrics_address"])
    for probe, path in PROBE_PATHS.items():
        if probe in c:
            get = c[probe]["httpGet"]
            assert get["path"] == path, (probe, get)
            assert get["port"] in ports or get["port"] in ports.values(), (probe, get)
    assert "readinessProbe" in c and "livenessProbe" in c

    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) <= _unit_caps(), set(sc["capabilities"]["add"]) - \
        _unit_caps()
    seccomp = sc.get("seccompProfile") or spec.get("securityContext", {}).get("seccompProfile")
    assert seccomp, "no seccomp profile chosen"
    if seccomp["type"] == "Localhost":
        assert seccomp["localhostProfile"] == "zproxy.json"
        assert os.path.exists(os.path.join(ROOT, "deploy", "seccomp", "zproxy.json"))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    assert grace >= cfg.get("drain_timeout_ms", 10000) / 1000 + 5

    # Every mount has a volume; state_dir and the admin socket's directory are writable.
    vols = {v["name"] for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert {m["name"] for m in c["volumeMounts"]} <= vols
    for path in (cfg["state_dir"], os.path.dirname(cfg["admin_address"][len("unix:"):])):
        assert path in mounts and not mounts[path].get("readOnly"), path
    if "bpffs_path" in cfg:
        assert spec.get("hostNetwork") is True
        bpf = [m for m in c["volumeMounts"] if cfg["bpffs_path"].startswith(m["mountPath"])]
        assert bpf and [v for v in spec["volumes"] if v["name"] == bpf[0]["name"]][0][
            "hostPath"]["path"] == "/sys/fs/bpf"

    labels = meta["labels"]
    for d in docs:
        sel = None
        if d["kind"] == "Service":
            sel = d["spec"]["selector"]
            for p in d["spec"]["ports"]:
                assert p["targetPort"] in ports or p["targetPort"] in ports.values(), p
        elif d["kind"] == "PodDisruptionBudget" or d is workload and "selector" in d["spec"]:
            sel = d["spec"]["selector"]["matchLabels"]
        if sel is not None:
            assert all(labels.get(k) == v for k, v in sel.items()), (d["kind"], sel, labels)


@pytest.mark.parametrize("shape", SHAPES)
def test_probe_paths_answer_on_a_real_zproxyd(shape, make_proxy, backends):
    """The shape's config, moved to loopback (free ports, the test backend as every
    endpoint, the test's own admin socket, state and bpffs dirs, no dataplane_user), serves
    the probe paths."""
    docs = _docs(shape)
    _, spec, _ = _workload(docs)
    c = [c for c in spec["containers"] if c["name"] == "zproxy"][0]
    cfg = yaml.safe_load(_zproxy_config(docs, spec, c))
    local = copy.deepcopy(cfg)
    for l in local["listeners"]:
        l["address"] = "127.0.0.1:0"
    for cl in local["clusters"]:
        cl["endpoints"] = [backends["a"].addr]
        cl.pop("health_check", None)
    local["metrics_address"] = "127.0.0.1:%d" % free_port()
    for k in ("admin_address", "state_dir", "bpffs_path"):
        local.pop(k, None)  # procs.Zproxy puts them in the test's own directories
    # Those directories are not searchable by nobody (test_privileges covers the user).
    local.pop("dataplane_user", None)
    z = make_proxy(local)
    # The listeners answer a moment before the data plane's sync stream is up (/ready
    # waits for that): poll like a kubelet would.
    for probe, path in PROBE_PATHS.items():
        if probe in c:
            assert wait_until(lambda: httpraw.request(z.metrics_port, target=path).status == 200,
                              5), (probe, path, httpraw.request(z.metrics_port, target=path).body)
