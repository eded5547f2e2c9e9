#!/usr/bin/python3
"""Route policy cost (issue 14, "Benchmark"): keep-alive CPU per request through a plain route
and through the same route with 10 header changes, a regex rewrite and a rate limit that never
triggers, in zproxy and in HAProxy (stdlib only; helpers from bench/http_bench.py).

Contenders, each its own process, started fresh for its slot and stopped after it:

  zproxy-plain     zproxyd + data plane, `match: {prefix: /}` -> cluster
  zproxy-policy    a second zproxyd instance (own port, admin socket, bpffs path, metrics port)
                   whose only route is the same one plus the policy below
  haproxy-plain    HAProxy, frontend -> backend, no rules
  haproxy-policy   HAProxy with the same rules as http-request/http-response rules and a
                   stick-table request rate check

The policy (zproxy syntax; HAProxy's equivalent in haproxy_conf()):
  regex_rewrite   ^/bench/(.*)$ -> /\\1          (the client asks /bench/headers/1, the backend
                                                 sees /headers/1)
  request         remove X-Debug, X-Internal (both sent by the client);
                  set X-Env, X-Region, X-Bench-Route, User-Agent
                  (replaces the client's); add X-Tag, X-Forwarded-Bench
  response        remove X-Extra-0 (sent by the backend's /headers/1); set X-Served-By
  rate_limit      10,000,000 req/s, burst 10,000,000, key client_address (never triggers)

Every contender gets the same client request (wrk with User-Agent, X-Debug and X-Internal
headers) and the same backend answer (zproxy-test-backend `GET /headers/1`: 200 with one extra
response header X-Extra-0 and a 10-byte body). Before each measured slot the contender is
checked with curl (rewritten path at the backend via /echo, each header set/added/removed or,
for the plain ones, left alone; the response header removed/set); any mismatch aborts the run.

Placement as bench/run-http: proxies and the backend on CPU 0, wrk on CPU 1, one worker or
thread each, contenders interleaved per repetition (the order reverses every other repetition,
so drift inside a repetition favours no one). CPU per request = utime+stime of the contender's
process tree (/proc) / requests completed by wrk.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench as hb  # noqa: E402  (Proc, prepare_binaries, cpu accounting, wrk, reports)

PORTS = {"backend": 18660, "zproxy-plain": 18661, "zproxy-policy": 18662,
         "haproxy-plain": 18663, "haproxy-policy": 18664,
         "zproxy-plain_metrics": 18665, "zproxy-policy_metrics": 18666}
CONTENDERS = ["zproxy-plain", "zproxy-policy", "haproxy-plain", "haproxy-policy"]
# zproxyd instances: admin socket and bpffs pin path suffixes (never those of run-http's zproxy)
ZTAG = {"zproxy-plain": "-pol-plain", "zproxy-policy": "-pol-policy"}

PATH_PLAIN = "/headers/1"          # backend: 200, "X-Extra-0: value-0", body "headers 1\n"
PATH_POLICY = "/bench/headers/1"   # rewritten to PATH_PLAIN by the policy contenders
BACKEND_BODY = b"headers 1\n"
# Sent by the client (wrk and the curl checks) to every contender.
CLIENT_HEADERS = [("User-Agent", "wrk-bench"), ("X-Debug", "1"), ("X-Internal", "secret")]
# The policy: 4 set + 2 add + 2 remove on the request, 1 set + 1 remove on the response.
# No ${client_address} (HAProxy: %[src]) value: with `xff_disable: true` (run-http's config,
# kept here) zproxy at c95a9c1 never learns the client address (the SO_PEERNAME request is
# only queued for X-Forwarded-For or the access log), so the variable expands to nothing and
# the field is dropped; see RESULTS.md. Static values on both sides instead.
REQ_SET = [("X-Env", "prod"), ("X-Region", "eu-west-1"), ("X-Bench-Route", "policy"),
           ("User-Agent", "zproxy-bench")]
REQ_ADD = [("X-Tag", "a"), ("X-Forwarded-Bench", "1")]
REQ_REMOVE = ["X-Debug", "X-Internal"]
RESP_SET = [("X-Served-By", "bench")]
RESP_REMOVE = ["X-Extra-0"]
RATE = 10000000  # req/s and burst: the largest zproxy's validation accepts; never reached

ZPROXY_ROUTES_PLAIN = """    routes:
      - match: { prefix: / }
        cluster: backend
"""

ZPROXY_ROUTES_POLICY = r"""    routes:
      - match: { prefix: / }
        cluster: backend
        regex_rewrite: { pattern: "^/bench/(.*)$", substitution: "/\\1" }
        request_headers:
          set: { X-Env: prod, X-Region: eu-west-1, X-Bench-Route: policy, User-Agent: zproxy-bench }
          add: { X-Tag: a, X-Forwarded-Bench: "1" }
          remove: [ X-Debug, X-Internal ]
        response_headers: { set: { X-Served-By: bench }, remove: [ X-Extra-0 ] }
        rate_limit: { requests_per_second: %d, burst: %d, key: client_address }
""" % (RATE, RATE)

HAPROXY_POLICY_RULES = r"""    stick-table type ip size 100k expire 10s store http_req_rate(1s)
    http-request track-sc0 src
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt %d }
    http-request replace-path ^/bench/(.*)$ /\1
    http-request del-header X-Debug
    http-request del-header X-Internal
    http-request set-header X-Env prod
    http-request set-header X-Region eu-west-1
    http-request set-header X-Bench-Route policy
    http-request set-header User-Agent zproxy-bench
    http-request add-header X-Tag a
    http-request add-header X-Forwarded-Bench 1
    http-response del-header X-Extra-0
    http-response set-header X-Served-By bench
""" % RATE


# --------------------------------------------------------------------------- configs

def zproxy_conf(workdir, name):
    conf = hb.zproxy_conf(workdir, PORTS[name], PORTS["backend"], PORTS[name + "_metrics"],
                          tag=ZTAG[name])
    if ZPROXY_ROUTES_PLAIN not in conf:
        raise hb.BenchError("http_bench.zproxy_conf changed: cannot find its routes block")
    if name == "zproxy-policy":
        conf = conf.replace(ZPROXY_ROUTES_PLAIN, ZPROXY_ROUTES_POLICY)
    # Its own state_dir: zproxyd otherwise persists into the machine-wide /var/lib/zproxy.
    state = os.path.join(workdir, "state" + ZTAG[name])
    os.makedirs(state, exist_ok=True)
    conf += "state_dir: %s\n" % state
    return conf.replace("# generated by bench/http_bench.py",
                        "# generated by bench/policy_bench.py (%s)" % name)


def haproxy_conf(workdir, name):
    conf = hb.haproxy_conf(PORTS[name], PORTS["backend"])
    # Stats socket (both, for symmetry): the policy check reads the stick table through it.
    conf = conf.replace("    no strict-limits\n", "    no strict-limits\n"
                        "    stats socket %s mode 600 level admin\n" % haproxy_sock(workdir, name))
    if name == "haproxy-policy":
        anchor = "    default_backend be\n"
        if anchor not in conf:
            raise hb.BenchError("http_bench.haproxy_conf changed: cannot find its frontend")
        conf = conf.replace(anchor, HAPROXY_POLICY_RULES + anchor)
    return conf


def haproxy_sock(workdir, name):
    return os.path.join(workdir, "%s.sock" % name)


# --------------------------------------------------------------------------- processes

def start_contender(env, name):
    w = env.workdir
    port = PORTS[name]
    if hb.port_open(port):
        raise hb.BenchError("port %d for %s is already in use" % (port, name))
    env_vars = None
    if name.startswith("zproxy"):
        conf = os.path.join(w, "%s.yaml" % name)
        with open(conf, "w") as f:
            f.write(zproxy_conf(w, name))
        cmd = [env.bins["zproxyd"], "--config", conf, "--dataplane", env.bins["zproxy-dataplane"]]
        chk = subprocess.run(cmd + ["--check"], capture_output=True, text=True, timeout=30)
        if chk.returncode != 0:
            raise hb.BenchError("%s: zproxyd --check rejected the bench config %s:\n%s%s" % (
                name, conf, chk.stdout, chk.stderr))
        if env.args.uring_shim:
            env_vars = dict(os.environ, LD_PRELOAD=hb.build_shim(w))
    else:
        conf = os.path.join(w, "%s.cfg" % name)
        with open(conf, "w") as f:
            f.write(haproxy_conf(w, name))
        chk = subprocess.run(["haproxy", "-c", "-f", conf], capture_output=True, text=True, timeout=30)
        if chk.returncode != 0:
            raise hb.BenchError("%s: haproxy -c rejected %s:\n%s%s" % (name, conf, chk.stdout, chk.stderr))
        cmd = ["haproxy", "-db", "-f", conf]
    p = hb.Proc(name, cmd, hb.PROXY_CPU, w, env=env_vars)
    try:
        # Up when it proxies "/" (untouched by the rewrite in both configs).
        hb.wait_body(p, port, env.backend_body, timeout=30)
    except BaseException:
        p.stop()
        raise
    if name.startswith("zproxy"):
        env.shim_capped = env.shim_capped or "uring_files_shim:" in p.log_tail(200)
    return p


# --------------------------------------------------------------------------- checks (curl)

def curl(port, path, extra_headers=()):
    """(status, {lower-case name: [values]}, body) of one GET with the client's headers."""
    cmd = ["curl", "-sS", "--max-time", "5", "-D", "-", "-o", "-"]
    for k, v in list(CLIENT_HEADERS) + list(extra_headers):
        cmd += ["-H", "%s: %s" % (k, v)]
    cmd.append("http://127.0.0.1:%d%s" % (port, path))
    r = subprocess.run(cmd, capture_output=True, timeout=15)
    if r.returncode != 0:
        raise hb.BenchError("curl %s failed (%d): %s" % (" ".join(cmd), r.returncode,
                                                         r.stderr.decode("utf-8", "replace")))
    raw = r.stdout
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/\S+ (\d+)", lines[0])
    if not m:
        raise hb.BenchError("curl %s: cannot parse %r" % (path, lines[0]))
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return int(m.group(1)), hdrs, body


def expect(cond, problems, what):
    if not cond:
        problems.append(what)


def verify(env, name, proc):
    """Checks with curl that the contender applies exactly its rules; raises BenchError (which
    aborts the run) on any mismatch. Returns what was seen (for the JSON and the report)."""
    port = PORTS[name]
    policy = name.endswith("-policy")
    bad = []
    seen = {}
    # 1. Request side: the backend's /echo shows the target and the fields it received.
    st, _, body = curl(port, ("/bench" if policy else "") + "/echo")
    expect(st == 200, bad, "GET %s/echo: status %d" % ("/bench" if policy else "", st))
    try:
        echo = json.loads(body)
    except ValueError:
        raise hb.BenchError("%s: /echo did not return JSON: %r\n%s" % (name, body[:200], proc.log_tail()))
    got = {}
    for k, v in echo.get("headers", []):
        got.setdefault(k.lower(), []).append(v)
    seen["backend_target"] = echo.get("target")
    seen["backend_headers"] = echo.get("headers")
    expect(echo.get("target") == "/echo", bad,
           "the backend saw target %r, expected \"/echo\"%s" % (
               echo.get("target"), " (regex rewrite not applied)" if policy else ""))
    if policy:
        for k, v in REQ_SET:
            vals = got.get(k.lower(), [])
            expect(vals == [v], bad, "request set %s: backend got %r, expected [%r]" % (k, vals, v))
        for k, v in REQ_ADD:
            vals = got.get(k.lower(), [])
            expect(vals == [v], bad, "request add %s: backend got %r, expected [%r]" % (k, vals, v))
        for k in REQ_REMOVE:
            expect(k.lower() not in got, bad, "request remove %s: backend still got %r" % (k, got.get(k.lower())))
    else:
        for k, v in CLIENT_HEADERS:
            expect(got.get(k.lower()) == [v], bad, "plain: client's %s reached the backend as %r" % (
                k, got.get(k.lower())))
        for k, _ in REQ_SET[:3] + REQ_ADD:
            expect(k.lower() not in got, bad, "plain: backend got %s %r" % (k, got.get(k.lower())))
    seen["x_request_id_upstream"] = got.get("x-request-id")
    # 2. Response side, on exactly what wrk will ask for.
    path = PATH_POLICY if policy else PATH_PLAIN
    st, rh, body = curl(port, path)
    seen["response_headers"] = rh
    expect(st == 200, bad, "GET %s: status %d" % (path, st))
    expect(body == BACKEND_BODY, bad, "GET %s: body %r, expected %r" % (path, body[:80], BACKEND_BODY))
    if policy:
        for k, v in RESP_SET:
            expect(rh.get(k.lower()) == [v], bad, "response set %s: client got %r" % (k, rh.get(k.lower())))
        for k in RESP_REMOVE:
            expect(k.lower() not in rh, bad, "response remove %s: client still got %r" % (k, rh.get(k.lower())))
    else:
        expect(rh.get("x-extra-0") == ["value-0"], bad, "plain: X-Extra-0 not passed through: %r" % (
            rh.get("x-extra-0"),))
        expect("x-served-by" not in rh, bad, "plain: X-Served-By present")
    # 3. Rate limit: HAProxy's stick table must hold our address with a request rate.
    if name == "haproxy-policy":
        table = haproxy_cmd(haproxy_sock(env.workdir, name), "show table fe")
        seen["haproxy_table"] = table.strip()
        expect(re.search(r"key=127\.0\.0\.1 .*http_req_rate\(1000\)=\d+", table), bad,
               "stick table fe has no entry for 127.0.0.1 with http_req_rate: %r" % table[:300])
    if name == "zproxy-policy":
        # Enforcement is not asserted (the limit never triggers); record whether this build
        # exposes rate-limit counters at all.
        try:
            st, mt = hb.http_get(PORTS[name + "_metrics"], "/metrics", timeout=3)
            seen["rate_limit_metrics"] = sorted({l.split("{")[0].split(" ")[0] for l in
                                                 mt.decode("utf-8", "replace").splitlines()
                                                 if "rate_limit" in l and not l.startswith("#")})
        except Exception as e:  # noqa: BLE001
            seen["rate_limit_metrics"] = ["(metrics unavailable: %r)" % e]
    if bad:
        raise hb.BenchError("%s does not apply its rules as configured:\n  %s\n--- %s log ---\n%s" % (
            name, "\n  ".join(bad), name, proc.log_tail()))
    return seen


def haproxy_cmd(path, cmd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(path)
        s.sendall(cmd.encode() + b"\n")
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        return out.decode("utf-8", "replace")
    finally:
        s.close()


# --------------------------------------------------------------------------- wrk

def run_wrk(port, path, duration, conns, pids=None, backend_pids=None, label=""):
    """hb.run_wrk with the client's request headers (hb.run_wrk has no way to add them);
    same accounting: utime+stime (ticks) and schedstat of `pids` around the run."""
    cmd = ["taskset", "-c", hb.LOAD_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % duration,
           "--latency", "--timeout", "5s"]
    for k, v in CLIENT_HEADERS:
        cmd += ["-H", "%s: %s" % (k, v)]
    cmd.append("http://127.0.0.1:%d%s" % (port, path))
    pids = pids or []
    t0, n0, b0 = hb.cpu_ticks(pids), hb.cpu_ns_schedstat(pids), hb.cpu_ticks(backend_pids or [])
    out = subprocess.run(["bash", "-c", "ulimit -n 100000 2>/dev/null || ulimit -n $(ulimit -Hn); "
                          "exec \"$@\"", "bash"] + cmd,
                         capture_output=True, text=True, timeout=duration + 60)
    t1, n1, b1 = hb.cpu_ticks(pids), hb.cpu_ns_schedstat(pids), hb.cpu_ticks(backend_pids or [])
    if out.returncode != 0:
        raise hb.BenchError("wrk failed (%d): %s %s" % (out.returncode, out.stdout, out.stderr))
    r = hb.parse_wrk(out.stdout)
    r["cmd"] = " ".join(cmd)
    n = max(r["requests"], 1)
    if pids:
        r["cpu_us_per_req"] = (t1 - t0) * 1e6 / hb.CLK_TCK / n
        r["cpu_us_per_req_schedstat"] = (n1 - n0) / 1e3 / n
        r["cpu_util"] = (t1 - t0) / hb.CLK_TCK / duration
    if backend_pids:
        r["backend_cpu_us_per_req"] = (b1 - b0) * 1e6 / hb.CLK_TCK / n
    if r["errors"]:
        hb.log("!!! %s: wrk reported %d errors (non-2xx %d, socket %s) !!!" % (
            label, r["errors"], r["non2xx"], r["socket_errors"]))
    return r


# --------------------------------------------------------------------------- report

TARGETS = [
    # label, numerator, denominator, limit
    ("zproxy policy ÷ zproxy plain, CPU µs/req (≤ 15% more)", "zproxy-policy", "zproxy-plain", 1.15),
    ("zproxy policy ÷ HAProxy policy, CPU µs/req", "zproxy-policy", "haproxy-policy", 0.5),
]
CONTEXT_RATIOS = [
    ("HAProxy policy ÷ HAProxy plain", "haproxy-policy", "haproxy-plain"),
    ("zproxy plain ÷ HAProxy plain", "zproxy-plain", "haproxy-plain"),
]


def paired(runs, a, b, key):
    out = []
    for rep in sorted({r["rep"] for r in runs}):
        x = [r[key] for r in runs if r["rep"] == rep and r["contender"] == a and key in r]
        y = [r[key] for r in runs if r["rep"] == rep and r["contender"] == b and key in r]
        if x and y and y[0]:
            out.append(x[0] / y[0])
    return out


def fmt_paired(p):
    return ("%.2f–%.2f× (%d)" % (min(p), max(p), len(p))) if p else "n/a"


def report(res):
    s = res["summary"]
    L = []
    L.append("Command: `%s`  " % res["command"])
    L.append("Date: %s  " % res["date"])
    m = res["machine"]
    L.append("Machine: %s CPUs (%s), kernel %s; load average at start %s, at the end %s%s  " % (
        m["nproc"], m["cpu"], m["kernel"], " ".join(res["loadavg_start"]), " ".join(res["loadavg_end"]),
        " — **busy machine** (other engineers' builds and tests ran alongside; only the ratios "
        "of this run mean anything)" if max(float(x) for x in res["loadavg_start"] + res["loadavg_end"]) > 1.5
        else ""))
    L.append("Git: %s; zproxy's code (last commit outside bench/): %s  " % (res["git"], res["git_code"]))
    L.append("Versions: " + "; ".join("%s: `%s`" % (k, v) for k, v in res["versions"].items()) + "  ")
    L.append("Placement: contenders + zproxy-test-backend on CPU %s, wrk on CPU %s; zproxy `workers: 1`, "
             "HAProxy `nbthread 1`; each contender its own process, started fresh per slot.  " % (
                 hb.PROXY_CPU, hb.LOAD_CPU))
    L.append("Load: `wrk -t1 -c%d -d%ds --latency -H 'User-Agent: wrk-bench' -H 'X-Debug: 1' "
             "-H 'X-Internal: secret'`, `%s` (plain) or `%s` (policy; rewritten to `%s`), 2 s "
             "unmeasured warm-up per slot; %d interleaved repetitions, order %s, reversed every "
             "other repetition.\n" % (res["connections"], res["duration"], PATH_PLAIN, PATH_POLICY,
                                      PATH_PLAIN, res["reps"], " → ".join(res["order"])))
    L.append("Policy (both proxies): regex rewrite `^/bench/(.*)$` → `/\\1`; request: remove "
             "X-Debug, X-Internal, set X-Env, X-Region, "
             "X-Bench-Route, User-Agent, add X-Tag, X-Forwarded-Bench; response: remove X-Extra-0, "
             "set X-Served-By (10 header changes); rate limit 10,000,000 req/s by client address "
             "(zproxy `rate_limit`, HAProxy stick table `http_req_rate(1s)` + `track-sc0 src` + "
             "`deny deny_status 429`). Verified with curl before every slot: rewritten path and "
             "request headers as seen by the backend's `/echo`, response headers on the benchmarked "
             "path, and for HAProxy its stick-table entry; plain contenders left everything alone.\n")
    L.append("| contender | req/s | p50 µs | p99 µs | CPU µs/req | CPU µs/req (schedstat) | "
             "proxy CPU busy | backend CPU µs/req | wrk errors |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for name in res["order"]:
        x = s.get(name)
        if not x:
            continue
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
            name, hb.fmt_stat(x["rps"]), hb.fmt_stat(x["p50"]), hb.fmt_stat(x["p99"]),
            hb.fmt_stat(x["cpu"], 2), hb.fmt_stat(x["cpu_ss"], 2, False),
            hb.fmt_stat(x["util"], 2, False), hb.fmt_stat(x["bcpu"], 2, False), x["errors"]))
    L.append("")
    L.append("Median (min–max) over repetitions. CPU = utime+stime of the contender's processes "
             "(zproxy: zproxyd + zproxy-dataplane) / requests; \"proxy CPU busy\" = its CPU seconds "
             "per second of the run.\n")
    L.append("| ratio (medians) | CPU µs/req | per-repetition CPU ratios | req/s | p99 | target |")
    L.append("|---|---|---|---|---|---|")
    res["targets"] = {}
    for label, a, b, limit in TARGETS:
        r = hb.ratio(hb.med(s, a, "cpu"), hb.med(s, b, "cpu"))
        verdict = "not measured" if r is None else ("**met**" if r <= limit else "**MISSED**")
        res["targets"][label] = {"ratio": r, "limit": limit, "met": None if r is None else r <= limit,
                                 "paired": paired(res["runs"], a, b, "cpu_us_per_req")}
        L.append("| %s | %s | %s | %s | %s | ≤ %.2f× — %s |" % (
            label, "%.2f×" % r if r is not None else "n/a",
            fmt_paired(res["targets"][label]["paired"]),
            hb.fmt(hb.ratio(hb.med(s, a, "rps"), hb.med(s, b, "rps")), 2) + "×",
            hb.fmt(hb.ratio(hb.med(s, a, "p99"), hb.med(s, b, "p99")), 2) + "×", limit, verdict))
    for label, a, b in CONTEXT_RATIOS:
        r = hb.ratio(hb.med(s, a, "cpu"), hb.med(s, b, "cpu"))
        L.append("| %s | %s | %s | %s | %s | — |" % (
            label, "%.2f×" % r if r is not None else "n/a",
            fmt_paired(paired(res["runs"], a, b, "cpu_us_per_req")),
            hb.fmt(hb.ratio(hb.med(s, a, "rps"), hb.med(s, b, "rps")), 2) + "×",
            hb.fmt(hb.ratio(hb.med(s, a, "p99"), hb.med(s, b, "p99")), 2) + "×"))
    L.append("")
    notes = []
    if res.get("zproxy_request_id"):
        notes.append("zproxy sends a generated `X-Request-Id` upstream in both of its configs (on by "
                     "default); HAProxy adds none — extra work on zproxy's side, not in the policy.")
    if res.get("rate_limit_metrics") is not None:
        rl = res["rate_limit_metrics"]
        notes.append("zproxy-policy's /metrics %s." % (
            "has rate-limit series %s" % ", ".join("`%s`" % x for x in rl) if rl else
            "has no rate-limit series: this build validates `rate_limit` but may not enforce it yet "
            "(the limiter's cost is then not in these numbers)"))
    if res.get("shim_capped"):
        notes.append(hb.SHIM_NOTE)
    for n in notes:
        L.append("- " + n)
    if notes:
        L.append("")
    if res["problems"]:
        L.append("**Problems during the run:**\n")
        L.extend("- " + p for p in res["problems"])
        L.append("")
    L.append("Raw per-run data: `%s`." % os.path.relpath(res["json"], hb.ROOT))
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------- main

def git_code_rev():
    """The last commit that changed anything outside bench/ (what zproxy was built from when
    the checkout differs from it only in bench/), with +dirty for uncommitted changes there."""
    r = subprocess.run(["git", "log", "-1", "--format=%h %s", "--", ".", ":(exclude)bench"],
                       cwd=hb.ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":(exclude)bench"], cwd=hb.ROOT, capture_output=True, text=True).stdout.strip()
    line = r.stdout.strip()
    if not line:
        return "?"
    h, _, subj = line.partition(" ")
    return "%s%s (\"%s\")" % (h, "+dirty" if dirty else "", subj[:60] + ("…" if len(subj) > 60 else ""))



def build(args):
    """bazel build -c opt (--jobs=2, like every build on these machines), then the binaries are
    copied out by hb.prepare_binaries (as with --no-build)."""
    if not args.no_build:
        cmd = ["bazel", "build", "-c", "opt", "--jobs=2", "--symlink_prefix=/",
               "//controlplane:zproxyd", "//dataplane:zproxy-dataplane", hb.BACKEND_TARGET]
        hb.log("building: " + " ".join(cmd))
        r = subprocess.run(cmd, cwd=hb.ROOT, capture_output=True, text=True, timeout=3600)
        if r.returncode != 0:
            raise hb.BenchError("build failed:\n" + r.stderr[-3000:])
    ns = argparse.Namespace(**dict(vars(args), no_build=True))
    return ns


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    ap.add_argument("--connections", type=int, default=64, help="wrk -c")
    ap.add_argument("--only", default=",".join(CONTENDERS), help="comma list of " + ",".join(CONTENDERS))
    ap.add_argument("--out", default=os.path.join(hb.BENCH_DIR, "RESULTS.md"))
    ap.add_argument("--json", default=os.path.join(hb.BENCH_DIR, "results", "policy.json"))
    ap.add_argument("--no-build", action="store_true", help="use the last bazel -c opt outputs")
    ap.add_argument("--no-uring-shim", dest="uring_shim", action="store_false",
                    help="don't LD_PRELOAD bench/uring_files_shim.so into zproxy")
    ap.add_argument("--keep-workdir", action="store_true")
    args = ap.parse_args(argv)
    args.backend = "zproxy"
    only = [c.strip() for c in args.only.split(",") if c.strip()]
    for c in only:
        if c not in CONTENDERS:
            raise hb.BenchError("unknown contender %r (choose from %s)" % (c, ",".join(CONTENDERS)))
    order = [c for c in CONTENDERS if c in only]
    need_zproxy = any(c.startswith("zproxy") for c in order)
    loadavg_start = open("/proc/loadavg").read().split()[:3]
    machine = hb.machine_info()
    workdir = hb.make_workdir("zb-policy-")
    hb.log("work dir " + workdir)
    for n, port in PORTS.items():
        if hb.port_open(port):
            raise hb.BenchError("port %d (%s) is already in use" % (port, n))
    bins, err = hb.prepare_binaries(build(args), workdir, need_zproxy, True)
    if "zproxy-test-backend" not in bins or (need_zproxy and "zproxyd" not in bins):
        raise hb.BenchError("binaries missing:\n%s" % err)
    hb.PORTS["backend"] = PORTS["backend"]  # hb.Env.start_backend reads hb.PORTS
    env = hb.Env(args, workdir, bins)
    env.start_backend("zproxy")
    st, body = hb.http_get(PORTS["backend"], PATH_PLAIN)
    if st != 200 or body != BACKEND_BODY:
        raise hb.BenchError("backend %s: %d %r, expected 200 %r" % (PATH_PLAIN, st, body, BACKEND_BODY))
    versions = {"zproxy": "%s (git %s)" % (hb.version_of([bins["zproxyd"], "--version"]) or "zproxyd",
                                           hb.git_rev()) if need_zproxy else None,
                "haproxy": hb.version_of(["haproxy", "-v"]),
                "wrk": hb.version_of(["wrk", "-v"], any_rc=True)}
    versions = {k: v for k, v in versions.items() if v}
    runs, problems, checks = [], [], {}
    try:
        for rep in range(1, args.reps + 1):
            rep_order = order if rep % 2 == 1 else list(reversed(order))
            for name in rep_order:
                hb.log("rep %d/%d: %s" % (rep, args.reps, name))
                run = {"rep": rep, "contender": name}
                proc = None
                try:
                    if not env.backend.alive():
                        raise hb.BenchError("the backend died:\n" + env.backend.log_tail())
                    proc = start_contender(env, name)
                    checks[name] = verify(env, name, proc)  # BenchError: abort the whole run
                    path = PATH_POLICY if name.endswith("-policy") else PATH_PLAIN
                    run_wrk(PORTS[name], path, 2, args.connections, label=name + " warm-up")
                    r = run_wrk(PORTS[name], path, args.duration, args.connections,
                                pids=proc.tree(), backend_pids=env.backend.tree(),
                                label="%s rep %d" % (name, rep))
                    if not proc.alive():
                        raise hb.BenchError("%s died during the run:\n%s" % (name, proc.log_tail()))
                    # The rules must still be in force after the load (cheap, and catches a
                    # contender that fell back to something else under load).
                    verify(env, name, proc)
                    run.update(r)
                    hb.log("  %s: %.0f req/s p99 %.0fus cpu %.2fus/req (schedstat %.2f) errors %d" % (
                        name, r["rps"], r.get("p99", 0), r["cpu_us_per_req"],
                        r["cpu_us_per_req_schedstat"], r["errors"]))
                    if r["errors"]:
                        problems.append("rep %d %s: %d wrk errors (non-2xx %d, socket %s)" % (
                            rep, name, r["errors"], r["non2xx"], r["socket_errors"]))
                finally:
                    if proc:
                        proc.stop()
                        time.sleep(1)
                runs.append(run)
    finally:
        env.backend.stop()
    loadavg_end = open("/proc/loadavg").read().split()[:3]
    summary = {}
    for name in order:
        rs = [r for r in runs if r["contender"] == name and "rps" in r]
        summary[name] = {
            "rps": hb.stat([r["rps"] for r in rs]), "p50": hb.stat([r.get("p50") for r in rs]),
            "p99": hb.stat([r.get("p99") for r in rs]),
            "cpu": hb.stat([r.get("cpu_us_per_req") for r in rs]),
            "cpu_ss": hb.stat([r.get("cpu_us_per_req_schedstat") for r in rs]),
            "util": hb.stat([r.get("cpu_util") for r in rs]),
            "bcpu": hb.stat([r.get("backend_cpu_us_per_req") for r in rs]),
            "errors": sum(r["errors"] for r in rs)}
    zp = checks.get("zproxy-policy") or checks.get("zproxy-plain") or {}
    res = {"command": os.environ.get("BENCH_COMMAND") or "bench/policy_bench.py " + " ".join(argv),
           "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "machine": machine, "loadavg_start": loadavg_start, "loadavg_end": loadavg_end,
           "git": hb.git_rev(), "git_code": git_code_rev(), "versions": versions, "reps": args.reps, "duration": args.duration,
           "connections": args.connections, "order": order, "runs": runs, "summary": summary,
           "checks": checks, "problems": problems, "json": os.path.abspath(args.json),
           "zproxy_request_id": bool(zp.get("x_request_id_upstream")),
           "rate_limit_metrics": checks.get("zproxy-policy", {}).get("rate_limit_metrics"),
           "shim_capped": env.shim_capped,
           "zproxy_config_policy": ZPROXY_ROUTES_POLICY, "haproxy_rules_policy": HAPROXY_POLICY_RULES}
    text = report(res)
    os.makedirs(os.path.dirname(res["json"]), exist_ok=True)
    with open(res["json"], "w") as f:
        json.dump(res, f, indent=1, default=str)
    hb.replace_section(os.path.abspath(args.out), "bench/run-policy", text,
                       "Route policy cost (bench/run-policy)")
    print(text)
    if args.keep_workdir:
        hb.log("kept " + workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    if problems:
        hb.log("!!! FINISHED WITH PROBLEMS:\n  " + "\n  ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except hb.BenchError as e:
        hb.log("FAILED: %s" % e)
        sys.exit(2)
