"""Route policy (docs/route-policy.md): redirects, direct responses, path rewrites (prefix and
RE2), request and response header changes with variables, X-Request-Id, header / query / regex
matches, for HTTP/1.1 and HTTP/2 clients; validation errors naming the field; live changes
through zproxyctl."""

import json
import re
import subprocess
import time

import pytest

import ctl
import httpraw
from conftest import cluster, listener
from procs import base_config

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def routes():
    return [
        {"match": {"prefix": "/old/"}, "redirect": {"path": "/new/", "code": 301}},
        {"match": {"prefix": "/moved/"},
         "redirect": {"prefix_rewrite": "/here/", "code": 308, "strip_query": True}},
        {"match": {"prefix": "/elsewhere"},
         "redirect": {"scheme": "https", "host": "other.example", "port": 8443, "code": 302}},
        {"match": {"prefix": "/secure/"}, "https_redirect": True},
        {"match": {"prefix": "/ping"},
         "direct_response": {"status": 200, "body": "pong\n", "content_type": "text/plain"},
         "response_headers": {"set": {"X-Answered-By": "zproxy ${listener}"}}},
        {"match": {"path": "/gone"}, "direct_response": {"status": 410}},
        {"match": {"prefix": "/api/"}, "cluster": "a", "prefix_rewrite": "/v2/",
         "request_headers": {"set": {"X-Env": "prod", "X-Client": "${client_address}"},
                             "add": {"X-Tag": "a"}, "remove": ["X-Debug"]},
         "response_headers": {"set": {"X-Served-By": "zproxy"}, "remove": ["X-Backend"]}},
        {"match": {"regex": "^/svc/[a-z]+/.*$"}, "cluster": "a",
         "regex_rewrite": {"pattern": "^/svc/([a-z]+)/(.*)$", "substitution": "/\\1/v1/\\2"}},
        {"match": {"prefix": "/h/", "headers": [{"name": "X-Canary", "exact": "1"}]},
         "cluster": "a", "request_headers": {"set": {"X-Route": "canary"}}},
        {"match": {"prefix": "/h/", "headers": [{"name": "X-Debug", "present": True}]},
         "cluster": "a", "request_headers": {"set": {"X-Route": "debug"}}},
        {"match": {"prefix": "/h/", "headers": [{"name": "User-Agent", "regex": "bot.*",
                                                 "invert": True}]},
         "cluster": "a", "request_headers": {"set": {"X-Route": "not-bot"}}},
        {"match": {"prefix": "/q/", "query_params": [{"name": "v", "exact": "2"}]},
         "cluster": "a", "request_headers": {"set": {"X-Route": "v2"}}},
        {"match": {"prefix": "/q/", "query_params": [{"name": "debug", "present": True}]},
         "cluster": "a", "request_headers": {"set": {"X-Route": "debug-q"}}},
        {"match": {"prefix": "/"}, "cluster": "a", "request_headers": {"set": {"X-Route": "default"}}},
    ]


@pytest.fixture(scope="module")
def proxy(backends, tmp_path_factory):
    from conftest import _finish, _live_proxies  # the module-scoped twin of make_proxy
    from procs import Zproxy
    a = cluster("a", backends["a"].addr)
    a["response_headers"] = {"add": {"X-Cluster": "a"}}
    cfg = base_config([listener("web", routes())], [a])
    z = Zproxy(cfg, str(tmp_path_factory.mktemp("route_policy")), name="route_policy")
    _live_proxies.append(z)
    yield z

    class _Req:  # _finish only reads the node for its report
        node = None
    _finish(z, _Req())


def curl(port, path, *extra, h2=False, method=None):
    """(status, {lowercased name: [values]}, body) through curl, HTTP/1.1 or h2c."""
    args = ["curl", "-sS", "--max-time", "10", "-D", "-", "-o", "-",
            "--http2-prior-knowledge" if h2 else "--http1.1"] + list(extra)
    if method == "HEAD":
        args.append("-I")
    elif method:
        args += ["-X", method]
    args.append("http://127.0.0.1:%d%s" % (port, path))
    r = subprocess.run(args, capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return status, headers, body


def echo(port, path, *extra, h2=False):
    status, headers, body = curl(port, path, *extra, h2=h2)
    assert status == 200, (status, body)
    j = json.loads(body)
    seen = {}
    for n, v in j["headers"]:
        seen.setdefault(n.lower(), []).append(v)
    return j, seen, headers


@pytest.fixture(params=["h1", "h2"])
def h2(request):
    return request.param == "h2"


@pytest.mark.parametrize("path,code,location", [
    ("/old/x?y=1", 301, "http://127.0.0.1:{port}/new/?y=1"),
    ("/moved/a/b?q=1", 308, "http://127.0.0.1:{port}/here/a/b"),
    ("/elsewhere/p", 302, "https://other.example:8443/elsewhere/p"),
    ("/secure/x?z", 301, "https://127.0.0.1/secure/x?z"),
])
def test_redirects(proxy, backends, h2, path, code, location):
    mark = backends["a"].log.mark()
    status, headers, body = curl(proxy.port, path, h2=h2)
    assert status == code
    assert headers["location"] == [location.format(port=proxy.port)]
    assert body == b""
    # Answered by zproxy: nothing reached the upstream.
    httpraw.request(proxy.port, target="/canary-redirect")
    assert backends["a"].log.reqs_since(mark) == [("GET", "/canary-redirect")]


def test_redirect_keeps_the_connection_open(proxy):
    with httpraw.Conn(proxy.port) as c:
        for _ in range(3):
            c.send(httpraw.build_request("GET", "/old/"))
            r = c.read_response()
            assert r.status == 301 and r.header("location").endswith("/new/")


def test_direct_response(proxy, backends, h2):
    status, headers, body = curl(proxy.port, "/ping", h2=h2)
    assert (status, body) == (200, b"pong\n")
    assert headers["content-type"] == ["text/plain"]
    assert headers["content-length"] == ["5"]
    assert headers["x-answered-by"] == ["zproxy web"]
    status, headers, body = curl(proxy.port, "/gone", h2=h2)
    assert (status, body) == (410, b"")


def test_direct_response_to_head_has_no_body(proxy):
    with httpraw.Conn(proxy.port) as c:
        c.send(httpraw.build_request("HEAD", "/ping"))
        r = c.read_response(method="HEAD")
        assert r.status == 200 and r.header("content-length") == "5" and r.body == b""
        c.send(httpraw.build_request("GET", "/ping"))  # the framing stayed intact
        assert c.read_response().body == b"pong\n"


def test_prefix_rewrite_and_request_headers(proxy, h2):
    j, seen, resp = echo(proxy.port, "/api/users/echo?x=1", "-H", "X-Debug: 1",
                         "-H", "X-Env: dev", "-H", "X-Tag: c", h2=h2)
    assert j["target"] == "/v2/users/echo?x=1"
    assert seen["x-env"] == ["prod"]
    assert seen["x-tag"] == ["c", "a"]
    assert "x-debug" not in seen
    assert seen["x-client"] == ["127.0.0.1"]
    # Response changes: the route's, then the cluster's.
    assert resp["x-served-by"] == ["zproxy"]
    assert resp["x-cluster"] == ["a"]


def test_regex_rewrite(proxy, h2):
    j, _, _ = echo(proxy.port, "/svc/orders/list/echo?p=1", h2=h2)
    assert j["target"] == "/orders/v1/list/echo?p=1"


@pytest.mark.parametrize("path,headers,route", [
    ("/h/echo", ["X-Canary: 1"], "canary"),
    ("/h/echo", ["X-Canary: 2", "X-Debug: x"], "debug"),
    ("/h/echo", ["User-Agent: curl"], "not-bot"),
    ("/h/echo", ["User-Agent: bot/1.0"], "default"),
    ("/q/echo?a=1&v=2", [], "v2"),
    ("/q/echo?v=3&debug", [], "debug-q"),
    ("/q/echo?v=22", ["User-Agent: x"], "default"),
])
def test_header_and_query_matches(proxy, h2, path, headers, route):
    extra = []
    for h in headers:
        extra += ["-H", h]
    _, seen, _ = echo(proxy.port, path, *extra, h2=h2)
    assert seen["x-route"] == [route]


def test_request_id_generated_or_kept(proxy, backends, h2):
    _, seen, _ = echo(proxy.port, "/echo", h2=h2)
    assert len(seen["x-request-id"]) == 1 and UUID4.match(seen["x-request-id"][0])
    _, seen2, _ = echo(proxy.port, "/echo", h2=h2)
    assert seen2["x-request-id"] != seen["x-request-id"]
    _, seen, _ = echo(proxy.port, "/echo", "-H", "X-Request-Id: client-abc", h2=h2)
    assert seen["x-request-id"] == ["client-abc"]


def test_request_id_off_or_replaced(make_proxy, backends):
    cfg = base_config([listener("off", [{"match": {"prefix": "/"}, "cluster": "a"}],
                                request_id_disable=True),
                       listener("replace", [{"match": {"prefix": "/"}, "cluster": "a"}],
                                request_id_ignore_client=True)],
                      [cluster("a", backends["a"].addr)])
    z = make_proxy(cfg)
    _, seen, _ = echo(z.ports["off"], "/echo")
    assert "x-request-id" not in seen
    _, seen, _ = echo(z.ports["replace"], "/echo", "-H", "X-Request-Id: spoofed")
    assert len(seen["x-request-id"]) == 1 and UUID4.match(seen["x-request-id"][0])


def test_traceparent_propagated_and_ids_logged(make_proxy, backends, tmp_path):
    log = tmp_path / "access.log"
    cfg = base_config([listener("web", [{"match": {"prefix": "/"}, "cluster": "a"}])],
                      [cluster("a", backends["a"].addr)], access_log=str(log),
                      access_log_format="json")
    z = make_proxy(cfg)
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    _, seen, _ = echo(z.port, "/echo", "-H", "traceparent: " + tp, "-H", "X-Request-Id: rid-1")
    assert seen["traceparent"] == [tp]
    curl(z.port, "/nothing-here", "-H", "X-Request-Id: rid-2")
    entries = []
    for _ in range(50):
        text = log.read_text() if log.exists() else ""
        entries = [json.loads(line) for line in text.splitlines()
                   if line.strip() and "__zproxy_e2e_ready" not in line]  # harness probes
        if len(entries) >= 2:
            break
        time.sleep(0.1)
    assert len(entries) >= 2, entries
    first = entries[0]
    assert first["request_id"] == "rid-1" and first["traceparent"] == tp
    assert first["status"] == 200 and first["request"] == "GET /echo HTTP/1.1"
    assert entries[1]["request_id"] == "rid-2"


@pytest.mark.parametrize("route,field,words", [
    ({"match": {"prefix": "/"}, "redirect": {"path": "/x", "code": 200}},
     "listeners[0].routes[0].redirect.code", "301, 302"),
    ({"match": {"prefix": "/"}, "cluster": "a", "redirect": {"path": "/x"}},
     "listeners[0].routes[0].cluster", "answers itself"),
    ({"match": {"prefix": "/"}, "cluster": "a",
      "request_headers": {"set": {"Content-Length": "1"}}},
     'listeners[0].routes[0].request_headers.set["Content-Length"]', "hop-by-hop or framing"),
    ({"match": {"prefix": "/"}, "cluster": "a", "response_headers": {"remove": ["Connection"]}},
     "listeners[0].routes[0].response_headers.remove[0]", "hop-by-hop or framing"),
    ({"match": {"prefix": "/"}, "cluster": "a", "regex_rewrite": {"pattern": "(", "substitution": "/"}},
     "listeners[0].routes[0].regex_rewrite.pattern", "invalid RE2"),
    ({"match": {"regex": "(a|"}, "cluster": "a"}, "listeners[0].routes[0].match.regex", "invalid RE2"),
    ({"match": {"prefix": "/"}, "cluster": "a", "request_headers": {"set": {"X-A": "${nope}"}}},
     'listeners[0].routes[0].request_headers.set["X-A"]', "unknown variable"),
    ({"match": {"prefix": "/"}, "cluster": "a", "retry": {"retry_on": ["sometimes"]}},
     "listeners[0].routes[0].retry.retry_on", "unknown retry condition"),
    ({"match": {"prefix": "/"}, "direct_response": {"status": 99}},
     "listeners[0].routes[0].direct_response.status", "200..599"),
])
def test_validation_names_the_field(backends, tmp_path, route, field, words):
    import procs
    import yamlgen
    cfg = base_config([listener("web", [route])], [cluster("a", backends["a"].addr)])
    path = tmp_path / "bad.yaml"
    path.write_text(yamlgen.dump(cfg))
    r = subprocess.run([procs.zproxyd_path(), "--config", str(path), "--check"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert field in r.stderr and words in r.stderr, r.stderr


def test_live_route_policy_through_zproxyctl(make_proxy, backends, tmp_path):
    cfg = base_config([listener("web", [{"match": {"prefix": "/"}, "cluster": "a"}])],
                      [cluster("a", backends["a"].addr)],
                      admin_address="unix:" + str(tmp_path / "admin.sock"),
                      state_dir=str(tmp_path / "state"))
    z = make_proxy(cfg)
    ctl.ok(z, "routes", "add", "--listener", "web", "--name", "moved", "--prefix", "/m/",
           "--route", "{redirect: {path: /n/, code: 307}}")
    listing = ctl.jsonout(z, "routes", "list")["listeners"][0]["routes"]
    assert listing[0]["name"] == "moved" and listing[0]["redirect"]["code"] == 307
    status, headers, _ = curl(z.port, "/m/x")
    assert status == 307 and headers["location"][0].endswith("/n/")
    # A bad policy is refused with the field named, and the old route keeps serving.
    r = ctl.run(z, "routes", "add", "--listener", "web", "--name", "moved", "--prefix", "/m/",
                "--route", "{redirect: {path: /n/, code: 200}}")
    assert r.returncode == 1 and "redirect.code" in r.stderr, r.stderr
    assert curl(z.port, "/m/x")[0] == 307
    ctl.ok(z, "routes", "add", "--listener", "web", "--name", "moved", "--prefix", "/m/",
           "--cluster", "a", "--route", "{prefix_rewrite: /rewritten/}")
    j, _, _ = echo(z.port, "/m/echo")
    assert j["target"] == "/rewritten/echo"


def test_client_address_variable_without_forwarded_headers_or_log(make_proxy, backends):
    """${client_address} needs the peer address even when nothing else asks for it."""
    route = {"match": {"prefix": "/"}, "cluster": "a",
             "request_headers": {"set": {"X-Real-IP": "${client_address}"}}}
    z = make_proxy(base_config([listener("web", [route], xff_disable=True)],
                               [cluster("a", backends["a"].addr)]))
    _, seen, _ = echo(z.port, "/echo")
    assert seen["x-real-ip"] == ["127.0.0.1"]
    assert "x-forwarded-for" not in seen
