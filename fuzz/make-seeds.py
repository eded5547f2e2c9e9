#!/usr/bin/python3
"""Writes the seed corpora of tools/fuzz-parser's targets into fuzz/corpus/<target>/.

Seeds are: the hand-written inputs that tools/fuzz-parser used to write into /tmp, the
llhttp conformance cases (tests/corpora/llhttp, MIT; the ```http blocks, unescaped as
dataplane/http1/llhttp_corpus_test.cc does), the example configs, and targeted inputs per
target. Files this script writes are named seed-*/llhttp-*; it never touches other files
(crash-* regression inputs and minimized corpus units merged by tools/fuzz-long --merge).
Re-running it is idempotent.   Usage: fuzz/make-seeds.py
"""
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")
LLHTTP = os.path.join(ROOT, "tests", "corpora", "llhttp")


def unescape(lines):
    joined = ""
    for i, l in enumerate(lines):
        last = i + 1 == len(lines)
        if l.endswith("\\") and not last:
            joined += l[:-1]
        else:
            joined += l
            if not last:
                joined += "\0NL\0"
    out = bytearray()
    i = 0
    j = joined
    while i < len(j):
        if j.startswith("\0NL\0", i):
            out += b"\r\n"
            i += 4
            continue
        c = j[i]
        if c != "\\" or i + 1 >= len(j):
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        e = j[i + 1]
        if e in "rntf":
            out += {"r": b"\r", "n": b"\n", "t": b"\t", "f": b"\f"}[e]
            i += 2
        elif e == "x" and i + 2 < len(j) and j[i + 2] in "0123456789abcdefABCDEF":
            k = i + 2
            while k < len(j) and k < i + 4 and j[k] in "0123456789abcdefABCDEF":
                k += 1
            out.append(int(j[i + 2:k], 16))
            i = k
        elif e in "01234567":
            k = i + 1
            while k < len(j) and k < i + 4 and j[k] in "01234567":
                k += 1
            out.append(int(j[i + 1:k], 8) & 0xFF)
            i = k
        else:
            out += b"\\"
            i += 1
    return bytes(out)


def llhttp_cases(kind):
    """(name, bytes) of every ```http block under llhttp/<kind>/."""
    d = os.path.join(LLHTTP, kind)
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".md"):
            continue
        heading, block, mode, n = "", [], None, 0
        with open(os.path.join(d, fn), encoding="utf-8", errors="surrogateescape") as f:
            for line in f.read().split("\n"):
                if mode is None:
                    if line.startswith("#") and line.strip("#").strip():
                        heading = line.strip("#").strip()
                    elif line.startswith("```http"):
                        mode, block = "http", []
                elif line.startswith("```"):
                    n += 1
                    name = re.sub(r"[^a-z0-9]+", "-", (fn[:-3] + "-" + heading).lower()).strip("-")
                    yield "%s-%02d" % (name[:60], n), unescape(block)
                    mode = None
                else:
                    block.append(line)


written = {}


def seed(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, name)
    written.setdefault(target, set()).add(name)
    old = open(path, "rb").read() if os.path.exists(path) else None
    if old != data:
        with open(path, "wb") as f:
            f.write(data)


def prune():
    """Removes seed-*/llhttp-* files this run did not write (renamed cases)."""
    for target, names in written.items():
        d = os.path.join(OUT, target)
        for fn in os.listdir(d):
            if (fn.startswith("seed-") or fn.startswith("llhttp-")) and fn not in names:
                os.remove(os.path.join(d, fn))


def head_and_rest(msg):
    i = msg.find(b"\r\n\r\n")
    return (msg, b"") if i < 0 else (msg[:i + 4], msg[i + 4:])


def main():
    req = list(llhttp_cases("request"))
    resp = list(llhttp_cases("response"))

    # --- http1_fuzz: 2 control bytes (split point, limits) + a message (request parser,
    # response parser and chunked scanner all see it).
    t = "http1_fuzz"
    old = {
        "get": b"\x10\x20GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n",
        "post_cl": b"\x33\x02POST /form HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        "post_te": b"\x05\x40PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        "absolute": b"\x21\x00GET http://example.com:80/a?b HTTP/1.0\r\nConnection: keep-alive, x-foo\r\nX-Foo: 1\r\n\r\n",
        "connect": b"\x01\x10CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        "upgrade": b"\x07\x30GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "resp": b"\x09\x08HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n",
        "resp_ch": b"\x02\x05HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n",
        "chunks": b'\x03\x07a;ext="q\\"x";n=v\r\n0123456789\r\n5\r\nhello\r\n0\r\nTrailer: x\r\n\r\n',
    }
    for k, v in old.items():
        seed(t, "seed-" + k, v)
    for i, (name, msg) in enumerate(req + resp):
        seed(t, "llhttp-" + name, bytes([(i * 37) & 0xFF, (i * 2) & 0xFE]) + msg)
    for i, (name, msg) in enumerate(resp + req):
        _, body = head_and_rest(msg)
        if body:
            seed(t, "llhttp-body-" + name, bytes([i & 0xFF, 0x10]) + body)

    # --- http1_response_fuzz: ctl (method bits 0-1, upgrade bit 2, HTTP/1.0 client bit 3,
    # pieces 4-7), limits byte, then the upstream's bytes.
    t = "http1_response_fuzz"
    for i, (name, msg) in enumerate(resp):
        seed(t, "llhttp-" + name, bytes([(i * 16) & 0xF0, 0x00]) + msg)
    crafted = {
        "cl": (0x00, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n"),
        "chunked-trailers": (0x10, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n5;x=y\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n"),
        "chunked-http10-client": (0x28, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
        "interim": (0x20, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        "upgrade-101": (0x04, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\n\x81\x00"),
        "head-cl": (0x01, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        "close-delimited": (0x30, b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nall of it until close"),
        "keepalive-10": (0x08, b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"),
        "connect-200": (0x03, b"HTTP/1.1 200 Connection established\r\n\r\n"),
        "conn-named": (0x00, b"HTTP/1.1 200 OK\r\nConnection: x-hop, close\r\nX-Hop: 1\r\nX-Keep: 2\r\nContent-Length: 0\r\n\r\n"),
        "304": (0x00, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"x\"\r\n\r\n"),
        "cl-te": (0x00, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    }
    for k, (c, v) in crafted.items():
        seed(t, "seed-" + k, bytes([c, 0x00]) + v)

    # --- body_decoder_fuzz: ctl (framing bits 0-1: 0/3 chunked, 1 length, 2 until close;
    # piece seed bits 3-7), length byte, then body bytes.
    t = "body_decoder_fuzz"
    bodies = {
        "simple": b"5\r\nhello\r\n0\r\n\r\n",
        "ext": b'a;ext="q\\"x";n=v\r\n0123456789\r\n5\r\nhello\r\n0\r\nTrailer: x\r\n\r\n',
        "trailers": b"3\r\nabc\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\nNEXT",
        "upper": b"A\r\n0123456789\r\nff\r\n" + b"x" * 255 + b"\r\n0\r\n\r\n",
        "partial": b"10\r\n0123456",
        "bad-size": b"g\r\nx\r\n0\r\n\r\n",
        "bad-term": b"3\r\nabcX\r\n0\r\n\r\n",
        "leading-zeros": b"0005\r\nhello\r\n000\r\n\r\n",
        "overflow": b"ffffffffffffffffff\r\n",
    }
    for i, (k, v) in enumerate(bodies.items()):
        seed(t, "seed-" + k, bytes([(i << 3) & 0xF8, 0]) + v)
    seed(t, "seed-length", bytes([0x01, 3]) + b"x" * 120 + b"extra")
    seed(t, "seed-length-exact", bytes([0x05, 10]) + b"0123456789")
    seed(t, "seed-until-close", bytes([0x02, 0]) + b"anything at all\r\n0\r\n\r\n")
    for i, (name, msg) in enumerate(req + resp):
        head, body = head_and_rest(msg)
        if b"chunked" in head.lower() and body:
            seed(t, "llhttp-" + name, bytes([(i << 3) & 0xF8, 0]) + body)

    # --- header_policy_fuzz: ctl (policy), split byte, then the client's bytes.
    t = "header_policy_fuzz"
    reqs = {
        "xff": (0x08, b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n"),
        "xff-many": (0x19, b"GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nA: b\r\nx-forwarded-for: 2.2.2.2\r\nX-Forwarded-Host: evil\r\n\r\n"),
        "rewrite": (0x01, b"POST /up HTTP/1.1\r\nHost: client.example\r\nContent-Length: 3\r\n\r\nabc"),
        "http10-nohost": (0x4c, b"GET /x HTTP/1.0\r\nUser-Agent: old\r\n\r\n"),
        "absolute": (0x0a, b"GET http://example.com:8080?q HTTP/1.1\r\nHost: other\r\n\r\n"),
        "options-star": (0x08, b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"),
        "options-abs": (0x08, b"OPTIONS http://h:81 HTTP/1.1\r\nHost: h:81\r\n\r\n"),
        "connect": (0x09, b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n"),
        "upgrade": (0x88, b"GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n"),
        "chunked": (0x60, b"PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nTE: trailers\r\n\r\n"),
        "conn-named": (0x18, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: x-a, content-length\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n"),
    }
    for k, (c, v) in reqs.items():
        seed(t, "seed-" + k, bytes([c, 0x33]) + v)
    for i, (name, msg) in enumerate(req):
        seed(t, "llhttp-" + name, bytes([(i * 29) & 0xFF, i & 0xFF]) + msg)

    # --- connect_allow_fuzz: a CONNECT target / allow pattern as text.
    t = "connect_allow_fuzz"
    for k, v in {"ip4": "10.0.0.5:22", "cidr": "192.168.1.0/24:*", "ip6": "[2001:db8::/32]:443",
                 "name": "Api.Internal.:443", "wild": "*.svc.cluster.local:443",
                 "aton": "0x7f.0.0.1:80", "ip6-target": "[::ffff:10.0.0.1]:8443",
                 "port-range": "10.0.0.0/8:1-1024"}.items():
        seed(t, "seed-" + k, v)

    # --- h2_session_fuzz: byte 0 even = server side (a client's bytes after the preface),
    # odd = client side (an upstream's bytes).
    t = "h2_session_fuzz"
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    get = b"\x00\x00\x0f\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x0ah2.example"
    post = b"\x00\x00\x0f\x01\x04\x00\x00\x00\x03\x83\x86\x84\x41\x0ah2.example\x00\x00\x05\x00\x01\x00\x00\x00\x03hello"
    rst = b"\x00\x00\x04\x03\x00\x00\x00\x00\x01\x00\x00\x00\x08"
    ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x0012345678"
    wu = b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x01\x00\x00"
    resp_f = b"\x00\x00\x01\x01\x04\x00\x00\x00\x01\x88\x00\x00\x02\x00\x01\x00\x00\x00\x01ok"
    goaway = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00"
    seed(t, "seed-get", b"\x00" + settings + get)
    seed(t, "seed-post", b"\x02" + settings + post + rst + ping + wu)
    seed(t, "seed-upstream", b"\x01" + settings + resp_f)
    seed(t, "seed-goaway", b"\x03" + settings + resp_f + rst + goaway)

    # --- config_fuzz: YAML text.
    t = "config_fuzz"
    for rel in ["examples/zproxy.yaml", "examples/zproxy-tls.yaml",
                "controlplane/config/testdata/design_example.yaml"]:
        with open(os.path.join(ROOT, rel), "rb") as f:
            seed(t, "seed-" + rel.replace("/", "-"), f.read())
    yamls = {
        "minimal": "listeners:\n  - name: web\n    address: 127.0.0.1:8080\n    routes: [ { match: { prefix: / }, cluster: app } ]\nclusters:\n  - name: app\n    endpoints: [ 127.0.0.1:3000 ]\n",
        "tls": "listeners:\n  - name: s\n    address: '[::1]:8443'\n    routes: [ { match: { prefix: / }, cluster: app } ]\n    tls:\n      certificates: [ { cert: /fuzz-ok/c.pem, key: /fuzz-ok/k.pem } ]\n      alpn: [h2, http/1.1]\n      min_version: TLS1_3\nclusters:\n  - name: app\n    endpoints: [ { address: 'localhost:443', weight: 2 } ]\n    protocol: http2\n    tls: { sni: up.example, ca: /fuzz-ok/ca.pem }\n    health_check: { interval_ms: 1000, grpc_service: '' }\n",
        "tcp-connect": "listeners:\n  - name: l4\n    address: 0.0.0.0:9000\n    tcp_proxy: { cluster: db }\n  - name: fwd\n    address: 0.0.0.0:3128\n    connect: { allow: ['10.0.0.0/8:22', '*.svc:443'] }\n    routes: [ { match: { path: /x, hosts: ['*.a.b', '1.2.3.4'], methods: [GET] }, cluster: db, host_rewrite: x } ]\nclusters:\n  - { name: db, endpoints: ['10.1.1.1:5432'], lb: least_connections }\nworkers: 2\nio_uring: { sq_depth: 4096, buf_count: 1024, buf_size: 16384 }\n",
        "sni-routes": "listeners:\n  - name: tls-pass\n    address: 0.0.0.0:8443\n    tcp_proxy:\n      cluster: d\n      client_hello_timeout_ms: 500\n      sni_routes:\n        - { server_names: [ a.example.com, '*.b.example.com' ], cluster: a }\n        - { server_names: [ A.example.com ], alpn: [ h2, '' ], cluster: x }\n        - { alpn: [ h2 ], cluster: a }\n        - { server_names: [ '127.0.0.1', '*' ], cluster: a }\nclusters:\n  - { name: d, endpoints: ['10.1.1.1:443'] }\n  - { name: a, endpoints: ['10.1.1.2:443'] }\n",
        "errors": "listeners:\n  - name: web\n    adress: x\n    routes: [ { match: { prefx: / } } ]\nclusters: {}\nworkers: -1\n",
        "anchors": "x: &a { name: c, endpoints: [1.2.3.4:1] }\nclusters: [ *a, *a ]\n",
        "scalar": "42\n",
        "syntax": "listeners: [ { name: \"a\n",
    }
    for k, v in yamls.items():
        seed(t, "seed-" + k, v)

    # --- sni_alpn_fuzz: line 0 = server name, '@' lines = listener ALPN, '#' lines = client
    # ALPN, other lines = certificate names.
    t = "sni_alpn_fuzz"
    for k, v in {
        "exact": "WWW.Example.com.\nwww.example.com\n*.example.com\nexample.com\n@h2\n@http/1.1\n#http/1.1\n#h2",
        "wildcard": "a.example.net\n*.example.net\n*.EXAMPLE.net\nb.example.net\n#h2\n#spdy/3",
        "deep": "a.b.example.net\n*.example.net\n*.b.example.net\n@http/1.1\n#h2",
        "bad": "x\n*\n**.x\na*.x\n*.\n*.*.x\n@\n#",
        "none": "\n\n@h2\n#acme-tls/1",
    }.items():
        seed(t, "seed-" + k, v)

    # --- client_hello_fuzz: the first bytes of a connection to an SNI-routed tcp_proxy
    # listener. Built here byte by byte (deterministic, unlike a real client's random and key
    # shares): ClientHellos with SNI and ALPN, without either, fragmented across records, and
    # things that are not one.
    t = "client_hello_fuzz"
    u16 = lambda n: struct.pack("!H", n)
    ext = lambda typ, data: u16(typ) + u16(len(data)) + data

    def sni(name):
        entry = b"\0" + u16(len(name)) + name
        return ext(0, u16(len(entry)) + entry)

    def alpn(*protos):
        lst = b"".join(bytes([len(p)]) + p for p in protos)
        return ext(16, u16(len(lst)) + lst)

    def hello(exts, records=None):
        body = (b"\x03\x03" + bytes(range(32)) + b"\x20" + bytes(32) + u16(6) +
                b"\x13\x01\x13\x02\xc0\x2b" + b"\x01\x00" + u16(len(exts)) + exts)
        msg = b"\x01" + struct.pack("!I", len(body))[1:] + body
        cuts = [0] + (records or []) + [len(msg)]
        return b"".join(b"\x16\x03\x01" + u16(b - a) + msg[a:b] for a, b in zip(cuts, cuts[1:]))

    versions = ext(43, b"\x04\x03\x04\x03\x03")
    for k, v in {
        "sni-alpn": hello(versions + sni(b"a.example.com") + alpn(b"h2", b"http/1.1")),
        "no-sni": hello(versions + ext(21, bytes(64))),
        "wildcard": hello(sni(b"X.B.Example.COM.") + alpn(b"h2")),
        "fragmented": hello(versions + sni(b"frag.example.com") + alpn(b"h2"), [2, 50, 90]),
        "http": b"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
        "alert": b"\x15\x03\x01\x00\x02\x02\x28",
    }.items():
        seed(t, "seed-" + k, v)

    prune()
    for target in sorted(written):
        print("%-22s %4d seeds" % (target, len(os.listdir(os.path.join(OUT, target)))))


if __name__ == "__main__":
    sys.exit(main())
