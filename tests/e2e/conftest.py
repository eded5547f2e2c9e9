"""Fixtures for the zproxy end-to-end tests.

Environment:
  ZPROXYD              zproxyd binary (default bazel-bin/controlplane/zproxyd; it finds
                       zproxy-dataplane beside itself)
  ZPROXY_TEST_BACKEND  backend binary (default bazel-bin/tests/backend/zproxy-test-backend)

Every process gets a free loopback port and writes its logs into pytest's tmp dir; a failed
test's report includes the stderr of every zproxyd alive at the time.
"""

import os

import pytest

import machine
import procs
from procs import Backend, Nginx, Zproxy, base_config

HTTP_LIMITS = {
    "max_request_line_bytes": 8192,
    "max_header_bytes": 65536,
    "max_headers": 100,
    "max_body_bytes": 0,
    "idle_timeout_ms": 60000,
}

_live_proxies = []


def cluster(name, *endpoints, **kw):
    c = {"name": name, "endpoints": list(endpoints), "pool_size": 8,
         "connect_timeout_ms": 2000, "read_timeout_ms": 30000}
    c.update(kw)
    return c


def listener(name, routes, **http):
    limits = dict(HTTP_LIMITS)
    limits.update(http)
    return {"name": name, "address": "127.0.0.1:0", "routes": routes, "http": limits}


def catch_all(cluster_name):
    return [{"match": {"prefix": "/"}, "cluster": cluster_name}]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.failed:
        for z in _live_proxies:
            rep.sections.append(("zproxyd stderr (%s)" % z.stderr_path, z.stderr()[-6000:]))


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    print("e2e logs in", d)
    return str(d)


@pytest.fixture(scope="session", autouse=True)
def _binaries_exist():
    for path in (procs.backend_path(),):
        if not os.access(path, os.X_OK):
            pytest.exit("missing %s: run `bazel build //...` (or set ZPROXY_TEST_BACKEND)" % path, 2)


@pytest.fixture(scope="session", autouse=True)
def machine_features():
    """The canary (machine.py): what this kernel offers, probed once, before any test, so
    every test compares zproxy's fallbacks with the same answer."""
    return machine.get()


def pytest_report_header(config):
    return "machine canary: " + machine.summary()


@pytest.fixture(scope="session")
def backends(session_dir):
    """Two test backends named a and b, shared by the whole session."""
    bs = {n: Backend(n, session_dir) for n in ("a", "b")}
    yield bs
    for b in bs.values():
        b.stop()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "expect_stderr(*regexes): messages this test expects in the stderr of the "
        "proxies it runs or shares (each regex matches a whole message: procs.bad_lines)")


def expected_stderr(request):
    """The regexes of the test's expect_stderr markers."""
    node = getattr(request, "node", None)
    if node is None:
        return []
    return [r for m in node.iter_markers("expect_stderr") for r in m.args]


def _bad_report(z, bad):
    return ("zproxyd stderr (%s) has error, data plane crash or sanitizer lines the test does "
            "not expect:\n%s" % (z.stderr_path, "\n".join(bad[:20])))


def _finish(z, request, expect_rc=0):
    """Stops z and checks it shut down cleanly (exit 0, no error lines, data plane crashes or
    sanitizer reports among the lines not yet checked after an earlier test)."""
    _live_proxies.remove(z)
    rc = z.stop()
    bad = z.unchecked_bad_stderr_lines(expected_stderr(request))
    z.cleanup()
    if expect_rc is not None:
        assert rc == expect_rc, "zproxyd exited %s; stderr:\n%s" % (rc, z.stderr()[-4000:])
    assert not bad, _bad_report(z, bad)


@pytest.fixture(scope="session")
def stack(backends, session_dir, request):
    """The shared proxy: routing rules for most tests, clusters a and b (one backend each).

    Listener "web":    /api/ for api.example.com and *.api.example.com, GET only -> b
                       (Host rewritten to internal.app); exact /exact -> b;
                       /only-post/ POST -> b; everything else -> a.
    Listener "strict": only /x/ on Host strict.example -> a; anything else is a 404.
    """
    a, b = backends["a"], backends["b"]
    cfg = base_config(
        listeners=[
            listener("web", [
                {"match": {"prefix": "/api/", "hosts": ["api.example.com", "*.api.example.com"],
                           "methods": ["GET"]},
                 "cluster": "b", "host_rewrite": "internal.app"},
                {"match": {"path": "/exact"}, "cluster": "b"},
                {"match": {"prefix": "/only-post/", "methods": ["POST"]}, "cluster": "b"},
                {"match": {"prefix": "/"}, "cluster": "a"},
            ]),
            listener("strict", [
                {"match": {"prefix": "/x/", "hosts": ["strict.example"]}, "cluster": "a"},
            ]),
        ],
        clusters=[cluster("a", a.addr), cluster("b", b.addr)],
    )
    z = Zproxy(cfg, session_dir, name="stack")
    _live_proxies.append(z)
    yield z
    _finish(z, request)


@pytest.fixture(autouse=True)
def _shared_proxies_stay_clean(request):
    """Attributes a crash of the shared proxy to the test that caused it (instead of a
    cascade of 'connection refused' in every later test), and fails the test during which
    any proxy still alive after it (shared by a session or module fixture) wrote an error,
    data plane crash or sanitizer line the test does not expect. Proxies of make_proxy are
    checked by _finish when the test ends."""
    yield
    if "stack" in request.fixturenames:
        z = request.getfixturevalue("stack")
        assert z.proc.poll() is None, "the shared zproxyd died (exit %s) during this test:\n%s" % (
            z.proc.returncode, z.stderr()[-4000:])
    reports = []
    for z in list(_live_proxies):
        bad = z.unchecked_bad_stderr_lines(expected_stderr(request))
        if bad:
            reports.append(_bad_report(z, bad))
    assert not reports, "\n".join(reports)


@pytest.fixture
def make_proxy(tmp_path, request):
    """Factory: make_proxy(config, allow_stderr=(), expect_rc=0, name=None, wrapper=())
    -> running Zproxy (wrapper: a command prefix such as procs.NO_BPF).

    Each proxy is stopped with SIGTERM at the end of the test and must exit with expect_rc
    (None: do not check) and print no error, data plane crash or sanitizer lines but those
    its allow_stderr (or the test's expect_stderr marker) names: regexes of whole messages.
    """
    made = []

    def make(config, allow_stderr=(), expect_rc=0, name=None, wrapper=()):
        z = Zproxy(config, str(tmp_path), name=name or "zproxy%d" % len(made),
                   allow_stderr=allow_stderr, wrapper=wrapper)
        _live_proxies.append(z)
        made.append((z, expect_rc))
        return z

    yield make
    errors = []
    for z, rc in made:
        try:
            _finish(z, request, rc)
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="session")
def nginx(session_dir):
    n = Nginx(session_dir)
    yield n
    n.stop()
