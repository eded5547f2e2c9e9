"""`http.xff_disable` (docs/configuration.md: "true: do not add X-Forwarded-For/-Proto/-Host"):
on such a listener the upstream gets the client's head without any X-Forwarded-* zproxy would
add; a listener with the default on the same proxy still adds them (so the check is not
vacuous)."""

import json

import pytest

import httpraw
from conftest import catch_all, cluster, listener
from procs import Backend, base_config

XFF = ("x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")


@pytest.fixture
def proxy(make_proxy, tmp_path):
    b = Backend("xff", str(tmp_path))
    try:
        cfg = base_config([listener("default", catch_all("app")),
                           listener("noxff", catch_all("app"), xff_disable=True)],
                          [cluster("app", b.addr)])
        yield make_proxy(cfg)
    finally:
        b.stop()


def _seen(port, headers=()):
    """The headers the backend's /echo got, {lowercase name: [values]}."""
    r = httpraw.request(port, target="/echo", headers=list(headers), host="orig.example:8080")
    assert r.status == 200, r
    seen = {}
    for n, v in json.loads(r.body)["headers"]:
        seen.setdefault(n.lower(), []).append(v)
    return seen


def test_default_listener_adds_forwarded_headers(proxy):
    seen = _seen(proxy.ports["default"])
    assert seen.get("x-forwarded-for") == ["127.0.0.1"], seen
    assert seen.get("x-forwarded-proto") == ["http"], seen
    assert seen.get("x-forwarded-host") == ["orig.example:8080"], seen


def test_xff_disable_adds_no_forwarded_headers(proxy):
    seen = _seen(proxy.ports["noxff"])
    assert not [h for h in XFF if h in seen], seen
    assert seen.get("host") == ["orig.example:8080"], seen


def test_xff_disable_leaves_client_forwarded_headers_alone(proxy):
    """Not adding means not appending either: what the client sent goes through as sent
    (the default listener appends the client address: see test_routing)."""
    sent = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")]
    seen = _seen(proxy.ports["noxff"], sent)
    assert seen.get("x-forwarded-for") == ["203.0.113.7"], seen
    assert seen.get("x-forwarded-proto") == ["https"], seen
    assert "x-forwarded-host" not in seen, seen
