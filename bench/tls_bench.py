#!/usr/bin/python3
"""Side-by-side TLS termination benchmark: zproxy vs nginx vs HAProxy (stdlib only).

All three terminate TLS with the same ECDSA P-256 certificate (made with the openssl CLI)
and proxy to the same plaintext backend (zproxy-test-backend), with the placement of
bench/run-http: proxy and backend on CPU 0, wrk on CPU 1, one worker each, runs interleaved
per repetition. Measured per proxy:

  full         wrk over https with `Connection: close`, session resumption off in every proxy
               (no tickets, no session cache): every request is a new connection with a full
               handshake, so conn/s = handshakes/s; the proxy's CPU time (utime+stime of its
               process tree) / connections = CPU per handshake (one small request/response
               included, the same for all)
  resumed      the same with each proxy's default resumption on: wrk (OpenSSL) keeps the
               session and resumes every new connection (TLS 1.3 PSK with ECDHE)
  keep-alive   wrk over https on kept-alive connections: req/s, latency, CPU per request

The TLS version and cipher are whatever wrk (OpenSSL) and each proxy negotiate by default;
the report shows them (openssl s_client against each proxy).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import http_bench as hb  # noqa: E402  (shared process, wrk and report helpers)

PORTS = {"backend": 18620, "zproxy": 18621, "nginx": 18622, "haproxy": 18623,
         "zproxy_metrics": 18631}


def make_cert(workdir):
    key, pem = os.path.join(workdir, "bench.key"), os.path.join(workdir, "bench.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", pem, "-days", "7",
                    "-subj", "/CN=bench.test", "-addext", "subjectAltName=DNS:bench.test"],
                   check=True, capture_output=True)
    combined = os.path.join(workdir, "bench-combined.pem")  # HAProxy wants cert + key in one
    with open(combined, "w") as f:
        f.write(open(pem).read() + open(key).read())
    return {"cert": pem, "key": key, "combined": combined}


def nginx_conf(workdir, port, backend_port, cert, resume):
    return hb.common_nginx_head(workdir, "tls") + """
http {
    access_log off;
    tcp_nodelay on;
    keepalive_timeout 600s; keepalive_requests 100000000;
    client_body_temp_path %(w)s/nginx-body; proxy_temp_path %(w)s/nginx-proxy;
    fastcgi_temp_path %(w)s/nginx-fastcgi; uwsgi_temp_path %(w)s/nginx-uwsgi;
    scgi_temp_path %(w)s/nginx-scgi;
    upstream backend { server 127.0.0.1:%(b)d; keepalive 64; keepalive_requests 100000000; }
    server {
        listen 127.0.0.1:%(p)d ssl backlog=4096;
        ssl_certificate %(c)s; ssl_certificate_key %(k)s;
        ssl_protocols TLSv1.2 TLSv1.3; %(r)s
        location / { proxy_pass http://backend; proxy_http_version 1.1;
                     proxy_set_header Connection ""; }
    }
}
""" % {"w": workdir, "p": port, "b": backend_port, "c": cert["cert"], "k": cert["key"],
       "r": "" if resume else "ssl_session_tickets off; ssl_session_cache off;"}


def haproxy_conf(port, backend_port, cert, resume):
    conf = hb.haproxy_conf(port, backend_port).replace(
        "    bind 127.0.0.1:%d\n" % port,
        "    bind 127.0.0.1:%d ssl crt %s alpn http/1.1%s\n" % (
            port, cert["combined"], "" if resume else " no-tls-tickets"))
    if not resume:
        conf = conf.replace("    nbthread 1\n", "    nbthread 1\n    tune.ssl.cachesize 0\n")
    return conf


def zproxy_conf(workdir, port, backend_port, metrics_port, cert, resume):
    return hb.zproxy_conf(workdir, port, backend_port, metrics_port).replace(
        "    http: { idle_timeout_ms: 600000, xff_disable: true }\n",
        "    http: { idle_timeout_ms: 600000, xff_disable: true }\n"
        "    tls: { certificates: [ { cert: %s, key: %s } ], session_tickets_disable: %s }\n" % (
            cert["cert"], cert["key"], "false" if resume else "true"))


def https_ready(proc, port, expect, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if not proc.alive():
            raise hb.BenchError("%s exited during startup:\n%s" % (proc.name, proc.log_tail()))
        r = subprocess.run(["curl", "-sk", "--max-time", "2", "https://127.0.0.1:%d/" % port],
                           capture_output=True)
        if r.returncode == 0 and r.stdout == expect:
            return
        last = (r.returncode, r.stdout[:80], r.stderr[:200])
        time.sleep(0.2)
    raise hb.BenchError("%s: https sanity check failed: %r\n%s" % (proc.name, last, proc.log_tail()))


def negotiated(port):
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                          "-servername", "bench.test"], input=b"", capture_output=True,
                         timeout=10).stdout.decode("utf-8", "replace")
    m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", out, re.M)
    return "%s %s" % (m.group(2), m.group(3)) if m else "?"


def run_wrk_tls(port, duration, conns, close, pids):
    cmd = ["taskset", "-c", hb.LOAD_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % duration,
           "--latency", "--timeout", "5s"]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append("https://127.0.0.1:%d/" % port)
    t0 = hb.cpu_ticks(pids)
    out = subprocess.run(["bash", "-c", "ulimit -n 100000 2>/dev/null || ulimit -n $(ulimit -Hn); "
                          "exec \"$@\"", "bash"] + cmd,
                         capture_output=True, text=True, timeout=duration + 60)
    t1 = hb.cpu_ticks(pids)
    if out.returncode != 0:
        raise hb.BenchError("wrk failed: %s %s" % (out.stdout, out.stderr))
    r = hb.parse_wrk(out.stdout)
    r["cmd"] = " ".join(cmd)
    r["cpu_us_per_req"] = (t1 - t0) * 1e6 / hb.CLK_TCK / max(r["requests"], 1)
    r["cpu_util"] = (t1 - t0) / hb.CLK_TCK / duration
    return r


def start_proxy(env, name, cert, resume=True):
    w = env.workdir
    port = PORTS[name]
    if hb.port_open(port):
        raise hb.BenchError("port %d for %s is already in use" % (port, name))
    if name == "nginx":
        conf = os.path.join(w, "nginx-tls.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(w, port, PORTS["backend"], cert, resume))
        cmd = ["nginx", "-p", w, "-c", conf, "-e", os.path.join(w, "nginx-tls-error.log")]
    elif name == "haproxy":
        conf = os.path.join(w, "haproxy-tls.cfg")
        with open(conf, "w") as f:
            f.write(haproxy_conf(port, PORTS["backend"], cert, resume))
        cmd = ["haproxy", "-db", "-f", conf]
    else:
        conf = os.path.join(w, "zproxy-tls.yaml")
        with open(conf, "w") as f:
            f.write(zproxy_conf(w, port, PORTS["backend"], PORTS["zproxy_metrics"], cert, resume))
        cmd = [env.bins["zproxyd"], "--config", conf, "--dataplane", env.bins["zproxy-dataplane"]]
    env_vars = None
    if name == "zproxy" and env.args.uring_shim:
        env_vars = dict(os.environ, LD_PRELOAD=hb.build_shim(w))
    p = hb.Proc(name, cmd, hb.PROXY_CPU, w, env=env_vars)
    try:
        https_ready(p, port, env.backend_body)
    except BaseException:
        p.stop()
        raise
    return p


def report(res):
    s = res["summary"]
    L = []
    L.append("Run: `%s` on %s (%s CPUs, kernel %s), %s, git %s. Placement as bench/run-http: "
             "proxy and backend on CPU 0, wrk on CPU 1, one worker each; %d repetitions of %d s, "
             "%d connections, interleaved. Same ECDSA P-256 certificate for all three; TLS as "
             "negotiated by default with wrk (OpenSSL %s)." % (
                 res["command"], res["machine"]["cpu"], res["machine"]["nproc"],
                 res["machine"]["kernel"], res["date"], res["git"], res["reps"], res["duration"],
                 res["connections"], res["openssl"]))
    L.append("")
    L.append("| proxy | negotiated | full handshakes/s | CPU µs / full handshake | "
             "proxy CPU busy | resumed/s | CPU µs / resumed | keep-alive req/s | p99 µs | "
             "CPU µs / req | proxy CPU busy |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in res["order"]:
        x = s[name]
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, x["negotiated"], hb.fmt_stat(x["hs_rps"]), hb.fmt_stat(x["hs_cpu"], 1),
            hb.fmt_stat(x["hs_util"], 2, spread=False), hb.fmt_stat(x["rs_rps"]),
            hb.fmt_stat(x["rs_cpu"], 1), hb.fmt_stat(x["ka_rps"]),
            hb.fmt_stat(x["ka_p99"]), hb.fmt_stat(x["ka_cpu"], 2),
            hb.fmt_stat(x["ka_util"], 2, spread=False)))
    L.append("")
    L.append("\"proxy CPU busy\" is the proxy's CPU time per second of the run (1.00 = CPU 0 "
             "fully used by it). Below 1 the rate is set by the load (one wrk thread on CPU 1 "
             "doing the client side of every handshake, and the backend sharing CPU 0), so the "
             "rates compare latency under the same load, and CPU per handshake/request is the "
             "cost comparison.")
    L.append("")
    z, h = "zproxy", "haproxy"
    if z in s and h in s:
        L.append("zproxy / HAProxy: CPU per full handshake %s (target ≤ 0.4), per resumed "
                 "handshake %s, keep-alive req/s %s (target ≥ 1.5), CPU per keep-alive request "
                 "%s." % (
                     hb.fmt(hb.ratio(hb.med(s, z, "hs_cpu"), hb.med(s, h, "hs_cpu")), 2),
                     hb.fmt(hb.ratio(hb.med(s, z, "rs_cpu"), hb.med(s, h, "rs_cpu")), 2),
                     hb.fmt(hb.ratio(hb.med(s, z, "ka_rps"), hb.med(s, h, "ka_rps")), 2),
                     hb.fmt(hb.ratio(hb.med(s, z, "ka_cpu"), hb.med(s, h, "ka_cpu")), 2)))
    if "nginx" in s and z in s:
        L.append("zproxy / nginx: CPU per full handshake %s, keep-alive req/s %s." % (
            hb.fmt(hb.ratio(hb.med(s, z, "hs_cpu"), hb.med(s, "nginx", "hs_cpu")), 2),
            hb.fmt(hb.ratio(hb.med(s, z, "ka_rps"), hb.med(s, "nginx", "ka_rps")), 2)))
    if res["problems"]:
        L.append("")
        L.append("Problems: " + "; ".join(res["problems"]))
    L.append("")
    L.append("Raw results: `%s`." % os.path.relpath(res["json"], hb.ROOT))
    return "\n".join(L) + "\n"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--only", default="zproxy,nginx,haproxy")
    ap.add_argument("--out", default=os.path.join(hb.BENCH_DIR, "RESULTS.md"))
    ap.add_argument("--json", default=os.path.join(hb.BENCH_DIR, "results", "tls.json"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-uring-shim", dest="uring_shim", action="store_false")
    args = ap.parse_args(argv)
    args.backend = "zproxy"
    only = [p for p in args.only.split(",") if p]
    workdir = hb.make_workdir("zb-tls-")
    hb.log("work dir " + workdir)
    bins, err = hb.prepare_binaries(args, workdir, "zproxy" in only, True)
    if "zproxy-test-backend" not in bins or ("zproxy" in only and "zproxyd" not in bins):
        raise hb.BenchError("build failed:\n%s" % err)
    cert = make_cert(workdir)
    hb.PORTS["backend"] = PORTS["backend"]  # Env.start_backend reads hb.PORTS
    env = hb.Env(args, workdir, bins)
    env.start_backend("zproxy")
    runs, problems, negotiated_by = [], [], {}
    try:
        for rep in range(1, args.reps + 1):
            for name in only:
                hb.log("rep %d/%d: %s" % (rep, args.reps, name))
                run = {"rep": rep, "proxy": name}
                proc = None
                try:
                    proc = start_proxy(env, name, cert)
                    negotiated_by[name] = negotiated(PORTS[name])
                    run_wrk_tls(PORTS[name], 2, args.connections, False, proc.tree())  # warm-up
                    run["keepalive"] = run_wrk_tls(PORTS[name], args.duration, args.connections,
                                                   False, proc.tree())
                    time.sleep(1)
                    run["resumed"] = run_wrk_tls(PORTS[name], args.duration, args.connections,
                                                 True, proc.tree())
                    if not proc.alive():
                        raise hb.BenchError("%s died during the run" % name)
                    proc.stop()
                    time.sleep(1)
                    proc = start_proxy(env, name, cert, resume=False)
                    run["handshakes"] = run_wrk_tls(PORTS[name], args.duration, args.connections,
                                                    True, proc.tree())
                    if not proc.alive():
                        raise hb.BenchError("%s died during the run" % name)
                    hb.log("  %s: keep-alive %.0f req/s %.2f us/req | full %.0f/s %.1f us each"
                           " | resumed %.0f/s %.1f us each" % (
                               name, run["keepalive"]["rps"], run["keepalive"]["cpu_us_per_req"],
                               run["handshakes"]["rps"], run["handshakes"]["cpu_us_per_req"],
                               run["resumed"]["rps"], run["resumed"]["cpu_us_per_req"]))
                    for k in ("keepalive", "handshakes", "resumed"):
                        if run[k]["errors"]:
                            problems.append("rep %d %s %s: %d wrk errors" % (
                                rep, name, k, run[k]["errors"]))
                except hb.BenchError as e:
                    problems.append("rep %d %s: %s" % (rep, name, str(e).splitlines()[0]))
                    run["error"] = str(e)
                    hb.log("!!! " + str(e))
                finally:
                    if proc:
                        proc.stop()
                        time.sleep(1)
                runs.append(run)
    finally:
        env.backend.stop()
    summary = {}
    for name in only:
        rs = [r for r in runs if r["proxy"] == name and "error" not in r]
        summary[name] = {
            "negotiated": negotiated_by.get(name, "?"),
            "hs_rps": hb.stat([r["handshakes"]["rps"] for r in rs]),
            "hs_cpu": hb.stat([r["handshakes"]["cpu_us_per_req"] for r in rs]),
            "ka_rps": hb.stat([r["keepalive"]["rps"] for r in rs]),
            "ka_p99": hb.stat([r["keepalive"].get("p99") for r in rs]),
            "ka_cpu": hb.stat([r["keepalive"]["cpu_us_per_req"] for r in rs]),
            "hs_util": hb.stat([r["handshakes"]["cpu_util"] for r in rs]),
            "rs_rps": hb.stat([r["resumed"]["rps"] for r in rs]),
            "rs_cpu": hb.stat([r["resumed"]["cpu_us_per_req"] for r in rs]),
            "ka_util": hb.stat([r["keepalive"]["cpu_util"] for r in rs]),
        }
    res = {"command": os.environ.get("BENCH_COMMAND") or "bench/tls_bench.py " + " ".join(argv),
           "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "machine": hb.machine_info(), "git": hb.git_rev(), "reps": args.reps,
           "duration": args.duration, "connections": args.connections, "order": only,
           "openssl": hb.version_of(["openssl", "version"]), "runs": runs, "summary": summary,
           "problems": problems, "json": os.path.abspath(args.json)}
    text = report(res)
    os.makedirs(os.path.dirname(res["json"]), exist_ok=True)
    with open(res["json"], "w") as f:
        json.dump(res, f, indent=1, default=str)
    hb.replace_section(os.path.abspath(args.out), "bench/run-tls", text,
                       "TLS termination (bench/run-tls)")
    print(text)
    shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except hb.BenchError as e:
        hb.log("FAILED: %s" % e)
        sys.exit(2)
