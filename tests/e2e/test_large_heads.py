"""Heads larger than the proxy's small head blocks (2 KiB) take the large-block path in
both directions, and arrive intact."""

import json

import httpraw


def test_large_request_head_forwarded_intact(stack):
    big = "v" * 9000
    r = httpraw.request(stack.port, target="/echo", headers=[("X-Big", big), ("X-After", "ok")])
    assert r.status == 200, r
    seen = dict((k.lower(), v) for k, v in json.loads(r.body)["headers"])
    assert seen["x-big"] == big
    assert seen["x-after"] == "ok"


def test_large_response_head_forwarded_intact(stack):
    # 120 fields (~3 KiB): over the small block, under the 128-field parser limit.
    r = httpraw.request(stack.port, target="/headers/120")
    assert r.status == 200, r
    assert len(r.headers) >= 120
    assert r.header("x-extra-119") == "value-119"
