"""`tcp_fast_open: true` on a cluster (docs/configuration.md: "TCP_FASTOPEN_CONNECT towards the
endpoints"), observed on the wire from the upstream's side: the upstream listens with
TCP_FASTOPEN and answers each request with Connection: close, so every request opens a new
connection; once the kernel holds a cookie for the endpoint, zproxy's request head rides in the
SYN, which the accepted socket's tcp_info reports (TCPI_OPT_SYN_DATA: data in the SYN was
accepted), and the kernel's TcpExtTCPFastOpenActive/Passive counters grow. Without the option
the same upstream never sees data in a SYN (the control that makes the check meaningful).

The kernel must allow TFO clients and servers (net.ipv4.tcp_fastopen bits 1 and 2); if it
does not, the test sets them and restores the old value afterwards.
"""

import pytest

import httpraw
from conftest import catch_all, cluster, listener
from procs import base_config
from scripted_upstream import ScriptedUpstream, response

SYSCTL = "/proc/sys/net/ipv4/tcp_fastopen"
N = 4


def _netstat(name):
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for keys, values in zip(lines[::2], lines[1::2]):
        if keys.startswith("TcpExt:"):
            return int(dict(zip(keys.split()[1:], values.split()[1:]))[name])
    raise KeyError(name)


@pytest.fixture
def tfo_sysctl():
    with open(SYSCTL) as f:
        old = f.read().strip()
    want = int(old, 0) | 3  # client and server
    if want != int(old, 0):
        try:
            with open(SYSCTL, "w") as f:
                f.write(str(want))
        except OSError as e:
            pytest.skip("net.ipv4.tcp_fastopen=%s lacks client+server and cannot be set (%s)"
                        % (old, e))
    try:
        yield
    finally:
        if want != int(old, 0):
            with open(SYSCTL, "w") as f:
                f.write(old)


@pytest.fixture
def tfo_upstream(tfo_sysctl):
    def answer(conn, index, method, target, body):
        return response(body=b"conn %d\n" % conn.index, close=True)
    up = ScriptedUpstream(answer, tfo_queue=64)
    yield up
    up.close()


def _run(make_proxy, up, tfo):
    z = make_proxy(base_config([listener("web", catch_all("app"))],
                               [cluster("app", up.addr, tcp_fast_open=tfo)]))
    first = len(up.conns)  # the harness's readiness probes
    active, passive = _netstat("TCPFastOpenActive"), _netstat("TCPFastOpenPassive")
    for i in range(N):
        r = httpraw.request(z.port, target="/r%d" % i)
        assert r.status == 200 and r.body == b"conn %d\n" % (first + i), r
    conns = up.conns[first:]
    assert [c.requests for c in conns] == [[("GET", "/r%d" % i)] for i in range(N)]
    return ([c.syn_data for c in conns], _netstat("TCPFastOpenActive") - active,
            _netstat("TCPFastOpenPassive") - passive)


def test_tcp_fast_open_puts_the_request_in_the_syn(make_proxy, tfo_upstream):
    syn_data, active, passive = _run(make_proxy, tfo_upstream, True)
    # The readiness probes already fetched a cookie; at the latest the first request's
    # connection did. Every later connection must carry its request in the SYN.
    assert all(syn_data[1:]), "connections whose SYN carried data: %r" % syn_data
    assert active >= N - 1 and passive >= N - 1, (active, passive)


def test_without_tcp_fast_open_no_data_in_the_syn(make_proxy, tfo_upstream):
    # Give the kernel a cookie for the endpoint first (a TFO client of our own), so only
    # zproxy's option decides.
    import socket
    for _ in range(2):
        s = socket.socket()
        s.setsockopt(socket.IPPROTO_TCP, 30, 1)  # TCP_FASTOPEN_CONNECT
        s.settimeout(5)
        s.connect(("127.0.0.1", tfo_upstream.port))
        s.sendall(httpraw.build_request(target="/prime", close=True))
        while s.recv(65536):
            pass
        s.close()
    assert tfo_upstream.conns[-1].syn_data, "our own TFO client got no data into the SYN: " \
        "the kernel does not do TFO on loopback here"
    syn_data, _, _ = _run(make_proxy, tfo_upstream, False)
    assert not any(syn_data), "data in the SYN without tcp_fast_open: %r" % syn_data
