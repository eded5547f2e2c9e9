"""gRPC with real grpc++ peers (tests/grpc): grpc-test-server (Echo with every RPC kind, and
grpc.health.v1.Health) and grpc-test-client (one call, its outcome as a JSON line).

Three parts:
  - the peers talking directly (no proxy): proves the client's checks can fail and pass, so
    the same assertions through zproxy mean something;
  - zproxyd's gRPC active health checks (Health/Check on `protocol: http2` clusters);
  - gRPC through zproxy (h2c to the listener, an http2 cluster).

Binaries: $ZPROXY_GRPC_TEST_SERVER and $ZPROXY_GRPC_TEST_CLIENT, else bazel-bin/tests/grpc/.
"""

import json
import os
import subprocess
import time

import pytest

import ctl
import procs
import yamlgen
from conftest import cluster, listener
from procs import base_config, stop_process, wait_until

MIB = 1 << 20
# A -bin value with every awkward byte (NUL, high bit, what base64 pads) and a text trailer.
BIN_HEX = "00ff7f800a0d2c3d"
TRAILERS = {"x-blob-bin": BIN_HEX, "x-note": "kept as sent"}
# grpc-message is percent-encoded on the wire: non-ASCII and '%' must survive the trip.
MESSAGE = "not here: caf\u00e9 100% sure"

def through_proxy(f):
    return f  # gRPC through zproxy: every test of this kind names it with this marker


def grpc_binary(env_var, name):
    path = os.environ.get(env_var) or os.path.join(procs.ROOT, "bazel-bin", "tests", "grpc", name)
    if not os.access(path, os.X_OK):
        pytest.fail("missing %s: bazel build //tests/grpc:%s (or set %s)" % (path, name, env_var))
    return path


class GrpcServer:
    """grpc-test-server on a kernel-picked port (or a given one, to restart in place)."""

    def __init__(self, name, tmpdir, port=0, health=()):
        self.name = name
        self.stderr_path = os.path.join(tmpdir, "grpc-server-%s.stderr" % name)
        args = [grpc_binary("ZPROXY_GRPC_TEST_SERVER", "grpc-test-server"),
                "--listen", "127.0.0.1:%d" % port, "--name", name]
        for h in health:
            args += ["--health", h]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=open(self.stderr_path, "ab"), text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on 127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError("grpc-test-server %s did not start: %r" % (name, line))
        self.port = int(line.split()[-1].rsplit(":", 1)[1])
        assert port in (0, self.port), line

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        rc = stop_process(self.proc, 5)
        assert rc == 0, "grpc-test-server %s exited %s" % (self.name, rc)


def call(target, rpc, *args, timeout=60):
    """One grpc-test-client call -> its JSON outcome (the client itself must exit 0)."""
    cmd = [grpc_binary("ZPROXY_GRPC_TEST_CLIENT", "grpc-test-client"), "--target", target,
           "--rpc", rpc] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, "%s -> %d\n%s%s" % (" ".join(cmd), r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def trailer_args(trailers=TRAILERS):
    out = []
    for k, v in trailers.items():
        out += ["--trailer", "%s=%s" % (k, v)]
    return out


def assert_ok(out, messages, nbytes, server=None):
    assert out["code"] == 0 and out["code_name"] == "OK" and out["message"] == "", out
    assert out["messages"] == messages and out["bytes"] == nbytes, out
    assert out["hash_ok"] is True, out
    if server is not None:
        assert out["server"] == server, out


# What each RPC kind returns for --count N --size S: (messages received, payload bytes).
KINDS = {
    "unary": lambda n, s: (1, s),
    "server_stream": lambda n, s: (n, n * s),
    "client_stream": lambda n, s: (1, 0),  # one summary message, no payload
    "bidi": lambda n, s: (n, n * s),
}


def check_every_kind(target, server_name):
    """Every RPC kind, small and 4 MiB+ messages, exact bytes and hashes."""
    for rpc, expect in KINDS.items():
        for count, size in ((5, 100), (3, 4 * MIB), (1, 5 * MIB + 3)):
            out = call(target, rpc, "--count", count, "--size", size)
            messages, nbytes = expect(count, size)
            assert_ok(out, messages, nbytes, server_name)
            assert out["sent"] == (count if rpc in ("client_stream", "bidi") else 1), out
    # Many small messages on one stream.
    assert_ok(call(target, "server_stream", "--count", 1000, "--size", 10), 1000, 10000)
    assert_ok(call(target, "bidi", "--count", 200, "--size", 1), 200, 200)


def check_statuses_and_trailers(target):
    """The server's status, message and trailers (text and -bin) arrive exactly."""
    for rpc in KINDS:
        out = call(target, rpc, "--count", 2, "--size", 64, "--status", 5, "--message", MESSAGE,
                   *trailer_args())
        assert out["code"] == 5 and out["code_name"] == "NOT_FOUND", out
        assert out["message"] == MESSAGE, out
        assert out["trailers"] == TRAILERS, out
        # Trailers also come with OK.
        out = call(target, rpc, "--count", 2, "--size", 64, *trailer_args())
        assert out["code"] == 0 and out["trailers"] == TRAILERS, out
    # Messages sent before a failing status still arrive, all of them.
    out = call(target, "server_stream", "--count", 3, "--size", 4 * MIB, "--status", 9,
               "--message", "after the data")
    assert out["code"] == 9 and out["message"] == "after the data", out
    assert out["messages"] == 3 and out["bytes"] == 12 * MIB and out["hash_ok"] is True, out


def check_deadline(target):
    for rpc in KINDS:
        out = call(target, rpc, "--sleep_ms", 3000, "--deadline_ms", 300)
        assert out["code"] == 4 and out["code_name"] == "DEADLINE_EXCEEDED", out
        assert 250 <= out["elapsed_ms"] < 2000, out


def stats(target):
    return call(target, "stats")


def check_client_cancel(target, stats_target):
    """A cancelled call ends CANCELLED at once on the client, and the server sees it."""
    for rpc in KINDS:
        before = stats(stats_target)["cancelled"]
        out = call(target, rpc, "--sleep_ms", 5000, "--cancel_after_ms", 300)
        assert out["code"] == 1 and out["code_name"] == "CANCELLED", out
        assert 250 <= out["elapsed_ms"] < 2000, out
        assert wait_until(lambda: stats(stats_target)["cancelled"] == before + 1, 3.0), (
            rpc, before, stats(stats_target))


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory):
    s = GrpcServer("g1", str(tmp_path_factory.mktemp("grpc")))
    yield s
    s.stop()


# --- the peers directly (no proxy) ------------------------------------------------------------

def test_direct_every_rpc_kind_with_4mib_messages(grpc_server):
    check_every_kind(grpc_server.addr, "g1")


def test_direct_status_message_and_bin_trailers(grpc_server):
    check_statuses_and_trailers(grpc_server.addr)


def test_direct_deadline_exceeded(grpc_server):
    check_deadline(grpc_server.addr)


def test_direct_client_cancel_reaches_the_server(grpc_server):
    check_client_cancel(grpc_server.addr, grpc_server.addr)


def test_direct_health_service(tmp_path):
    s = GrpcServer("gh", str(tmp_path), health=["a.Svc=NOT_SERVING", "b.Svc=SERVING"])
    try:
        def check(service):
            out = call(s.addr, "health_check", "--service", service)
            return out["code"], out.get("serving_status")
        assert check("") == (0, "SERVING")
        assert check("a.Svc") == (0, "NOT_SERVING")
        assert check("b.Svc") == (0, "SERVING")
        assert check("c.Svc")[0] == 5  # unknown: NOT_FOUND
        assert call(s.addr, "set_health", "--service", "a.Svc", "--serving", "true")["code"] == 0
        assert check("a.Svc") == (0, "SERVING")
        assert call(s.addr, "set_health", "--service", "", "--serving", "false")["code"] == 0
        assert check("") == (0, "NOT_SERVING")
    finally:
        s.stop()


def test_direct_refused_is_unavailable():
    out = call("127.0.0.1:%d" % procs.free_port(), "unary", "--deadline_ms", 5000)
    assert out["code"] == 14 and out["code_name"] == "UNAVAILABLE", out


# --- zproxyd's gRPC health checks (no HTTP/2 data path needed) --------------------------------

GRPC_HEALTH = {"interval_ms": 200, "timeout_ms": 500, "healthy_threshold": 1,
               "unhealthy_threshold": 2, "grpc_service": "zproxy.test.Echo"}


def endpoint_health(z, cluster_name, address):
    h = ctl.jsonout(z, "health")
    return {e["address"]: e for e in h["endpoints"] if e["cluster"] == cluster_name}.get(address)


def wait_endpoint(z, cluster_name, address, pred, timeout=5.0):
    last = {}

    def check():
        last["e"] = endpoint_health(z, cluster_name, address)
        return last["e"] if last["e"] is not None and pred(last["e"]) else None
    e = wait_until(check, timeout, 0.05)
    assert e, "%s %s: not met within %.1fs: %r\n%s" % (cluster_name, address, timeout,
                                                       last.get("e"), z.stderr()[-3000:])
    return e


def test_grpc_health_check_follows_the_servers_health(make_proxy, tmp_path):
    s = GrpcServer("hc", str(tmp_path), health=["zproxy.test.Echo=SERVING"])
    other = GrpcServer("hc-other", str(tmp_path), health=["zproxy.test.Echo=NOT_SERVING"])
    try:
        cfg = base_config(
            [listener("web", [{"match": {"prefix": "/"}, "cluster": "grpc"}])],
            [cluster("grpc", s.addr, other.addr, protocol="http2",
                     health_check=dict(GRPC_HEALTH))])
        z = make_proxy(cfg)

        e = wait_endpoint(z, "grpc", s.addr, lambda e: e["last_check_unix_ms"] != "0")
        assert e["healthy"] is True and e["last_check_ok"] is True, e
        assert e["last_check_reason"] == "gRPC SERVING", e
        assert e["check"] == "grpc Health/Check zproxy.test.Echo", e
        # A server that says NOT_SERVING from the start goes down after 2 checks.
        e = wait_endpoint(z, "grpc", other.addr, lambda e: e["healthy"] is False)
        assert e["last_check_reason"] == "gRPC NOT_SERVING", e
        assert e["consecutive_failures"] >= 2, e

        # Flip the first one: down after unhealthy_threshold checks, back after one.
        flipped = int(time.time() * 1000)
        assert call(s.addr, "set_health", "--service", "zproxy.test.Echo",
                    "--serving", "false")["code"] == 0
        e = wait_endpoint(z, "grpc", s.addr, lambda e: e["healthy"] is False)
        assert e["last_check_ok"] is False and e["last_check_reason"] == "gRPC NOT_SERVING", e
        assert int(e["last_transition_unix_ms"]) >= flipped, (flipped, e)
        assert "endpoint %s is now unhealthy: gRPC NOT_SERVING" % s.addr in z.stderr()
        assert call(s.addr, "set_health", "--service", "zproxy.test.Echo",
                    "--serving", "true")["code"] == 0
        e = wait_endpoint(z, "grpc", s.addr, lambda e: e["healthy"] is True)
        assert e["last_check_reason"] == "gRPC SERVING", e
        assert "endpoint %s is now healthy: gRPC SERVING" % s.addr in z.stderr()

        # The server gone: the check fails with gRPC's UNAVAILABLE; back on the same port.
        port = s.port
        s.stop()
        e = wait_endpoint(z, "grpc", s.addr, lambda e: e["healthy"] is False)
        assert e["last_check_reason"].startswith("gRPC status 14: "), e
        s = GrpcServer("hc", str(tmp_path), port=port, health=["zproxy.test.Echo=SERVING"])
        e = wait_endpoint(z, "grpc", s.addr, lambda e: e["healthy"] is True)
        assert e["last_check_reason"] == "gRPC SERVING", e
    finally:
        s.stop()
        other.stop()


def test_grpc_health_check_unknown_service_and_overall_health(make_proxy, tmp_path):
    s = GrpcServer("hc-unknown", str(tmp_path))
    try:
        cfg = base_config(
            [listener("web", [{"match": {"prefix": "/"}, "cluster": "unknown"}])],
            [cluster("unknown", s.addr, protocol="http2",
                     health_check=dict(GRPC_HEALTH, grpc_service="no.such.Service")),
             # "" asks for the server's overall health, which is SERVING.
             cluster("overall", s.addr, protocol="http2",
                     health_check=dict(GRPC_HEALTH, grpc_service=""))])
        z = make_proxy(cfg)
        e = wait_endpoint(z, "unknown", s.addr, lambda e: e["healthy"] is False)
        assert e["last_check_reason"] == "gRPC status 5: unknown service", e
        e = wait_endpoint(z, "overall", s.addr, lambda e: e["last_check_unix_ms"] != "0")
        assert e["healthy"] is True and e["last_check_reason"] == "gRPC SERVING", e
        assert e["check"] == 'grpc Health/Check ""', e
    finally:
        s.stop()


def test_grpc_health_check_config_errors_name_the_field(tmp_path):
    cfg = base_config([listener("web", [{"match": {"prefix": "/"}, "cluster": "grpc"}])],
                      [cluster("grpc", "127.0.0.1:1", health_check=dict(GRPC_HEALTH))])
    path = os.path.join(str(tmp_path), "bad.yaml")
    with open(path, "w") as f:
        f.write(yamlgen.dump(cfg))
    r = procs.run_check(path)
    assert r.returncode == 1, r
    assert "clusters[0].health_check.grpc_service" in r.stderr + r.stdout, r
    assert "protocol: http2" in r.stderr + r.stdout, r


# --- gRPC through zproxy (h2c listener -> http2 cluster) --------------------------------------

def _grpc_proxy(make_proxy, clusters, routes=None, **kw):
    routes = routes or [{"match": {"prefix": "/zproxy.test.Echo/"}, "cluster": "grpc"}]
    cfg = base_config([listener("grpc", routes)], clusters)
    return make_proxy(cfg, **kw)


@pytest.fixture
def proxied(make_proxy, grpc_server):
    z = _grpc_proxy(make_proxy, [cluster("grpc", grpc_server.addr, protocol="http2")])
    return "127.0.0.1:%d" % z.port


@through_proxy
def test_proxy_every_rpc_kind_with_4mib_messages(proxied):
    check_every_kind(proxied, "g1")


@through_proxy
def test_proxy_status_message_and_bin_trailers(proxied):
    check_statuses_and_trailers(proxied)


@through_proxy
def test_proxy_client_deadline(proxied):
    check_deadline(proxied)


@through_proxy
def test_proxy_client_cancel_cancels_the_upstream_stream(proxied, grpc_server):
    # Counted on the server, asked directly: the cancellation crossed zproxy.
    check_client_cancel(proxied, grpc_server.addr)


@through_proxy
def test_proxy_no_route_is_unimplemented(proxied):
    # Only /zproxy.test.Echo/ is routed: the health service's path has no route.
    out = call(proxied, "health_check")
    assert out["code"] == 12 and out["code_name"] == "UNIMPLEMENTED", out
    assert out["message"] != "", out


@through_proxy
def test_proxy_endpoint_refused_is_unavailable(make_proxy):
    z = _grpc_proxy(make_proxy, [cluster("grpc", "127.0.0.1:%d" % procs.free_port(),
                                         protocol="http2")])
    out = call("127.0.0.1:%d" % z.port, "unary")
    assert out["code"] == 14 and out["code_name"] == "UNAVAILABLE", out
    assert out["message"] != "", out


@through_proxy
def test_proxy_read_timeout_is_deadline_exceeded(make_proxy, grpc_server):
    z = _grpc_proxy(make_proxy, [cluster("grpc", grpc_server.addr, protocol="http2",
                                         read_timeout_ms=300)])
    out = call("127.0.0.1:%d" % z.port, "unary", "--sleep_ms", 3000)
    assert out["code"] == 4 and out["code_name"] == "DEADLINE_EXCEEDED", out
    assert out["message"] != "", out
    assert 250 <= out["elapsed_ms"] < 2500, out
