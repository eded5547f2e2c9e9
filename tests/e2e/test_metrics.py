"""GET /metrics: Prometheus text format, families, labels, counters that move."""

import pytest

import httpraw
import promtext

FAMILIES = {
    "zproxy_requests_total": ("counter", {"worker", "class"}),
    "zproxy_connections_open": ("gauge", {"worker"}),
    "zproxy_upstream_connects_total": ("counter", {"worker"}),
    "zproxy_upstream_reused_total": ("counter", {"worker"}),
    "zproxy_errors_total": ("counter", {"worker", "cause"}),
    "zproxy_connect_requests_total": ("counter", {"worker", "outcome"}),
    "zproxy_upstream_connect_errors_total": ("counter", {"worker", "errno"}),
    "zproxy_parser_rejections_total": ("counter", {"worker", "reason"}),
    "zproxy_recv_enobufs_total": ("counter", {"worker"}),
    "zproxy_send_zc_total": ("counter", {"worker"}),
}


def scrape(z):
    r = httpraw.request(z.metrics_port, target="/metrics")
    assert r.status == 200, r
    assert r.header("content-type", "").startswith("text/plain")
    return promtext.parse(r.body.decode())


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_present_with_help_type_and_labels(stack, name):
    fams = scrape(stack)
    assert name in fams, "missing family %s" % name
    f = fams[name]
    want_type, want_labels = FAMILIES[name]
    assert f.help, "%s has no # HELP" % name
    assert f.type == want_type
    assert f.samples, "%s has no samples" % name
    for _, labels, _ in f.samples:
        assert want_labels <= set(labels), "%s sample labels %r" % (name, labels)


def test_requests_total_2xx_increases(stack):
    before = scrape(stack)["zproxy_requests_total"].value(worker="0", **{"class": "2xx"})
    for _ in range(5):
        assert httpraw.request(stack.port).status == 200
    after = scrape(stack)["zproxy_requests_total"].value(worker="0", **{"class": "2xx"})
    assert after >= before + 5


def test_upstream_reuse_counted(stack):
    before = scrape(stack)["zproxy_upstream_reused_total"].value()
    with httpraw.Conn(stack.port) as c:
        for _ in range(3):
            c.send(httpraw.build_request(target="/"))
            assert c.read_response().status == 200
    assert scrape(stack)["zproxy_upstream_reused_total"].value() >= before + 2


def test_parser_rejection_counted(stack):
    before = scrape(stack)["zproxy_parser_rejections_total"].value()
    r, _ = httpraw.exchange(stack.port, b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n")
    assert r.status == 400
    fams = scrape(stack)["zproxy_parser_rejections_total"]
    assert fams.value() == before + 1
    assert fams.label_values("reason"), "no reason label values"


def test_connections_open_counts_client_connections(stack):
    with httpraw.Conn(stack.port) as c:
        c.send(httpraw.build_request(target="/"))
        c.read_response()
        f = scrape(stack)["zproxy_connections_open"]
        # Split by side (client/upstream) where the proxy reports it.
        value = f.value(side="client") if f.label_values("side") else f.value()
        assert value >= 1


def test_parser_handles_format_details():
    text = ('# HELP x_total Things.\n# TYPE x_total counter\n'
            'x_total{a="q\\"uote",b="back\\\\slash"} 3\nx_total{a="n"} 4 1700000000\n'
            '# TYPE g gauge\ng +Inf\n')
    fams = promtext.parse(text)
    assert fams["x_total"].value() == 7
    assert fams["x_total"].label_values("a") == {'q"uote', "n"}
    assert fams["g"].value() == float("inf")
    with pytest.raises(promtext.ParseError):
        promtext.parse("x_total{a=b} 1\n")
