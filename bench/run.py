#!/usr/bin/env python3
"""Side-by-side load runs on loopback: Portcullis gateway vs a bare Pingora proxy, nginx and HAProxy.

Every system proxies the same upstream (an nginx that answers a small static body) and is driven by
the same load generator (wrk) with the same connections and duration. Runs alternate between the
systems, round by round, so slow drift of the machine hits all of them alike. For each run the
proxy's CPU seconds (utime+stime of all its processes, from /proc) and peak RSS are read, which
gives CPU microseconds per request: the robust figure on a small shared machine.

This machine has 2 cores shared by the load generator, the upstream and the proxy: the proxy is
pinned to CPU 0 and runs one worker thread; wrk and the upstream share CPU 1. Compare ratios
measured in the same run, not absolute numbers.

Usage: python3 bench/run.py [--quick] [--duration S] [--rounds N] [--connections C]
Writes bench/results/latest.json and bench/results/latest.md.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
UPSTREAM_PORT = 18080
PORTS = {"nginx": 18081, "haproxy": 18082, "pingora-floor": 18083, "portcullis": 18084}
PORTCULLIS_API_PORT = 18085
PORTCULLIS_METRICS_PORT = 18086
PROXY_CPU = "0"
LOAD_CPU = "1"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def ensure_packages():
    missing = [p for p, exe in (("nginx-light", "nginx"), ("haproxy", "haproxy"), ("wrk", "wrk"))
               if shutil.which(exe) is None and not Path(f"/usr/sbin/{exe}").exists()]
    if missing:
        print(f"installing {' '.join(missing)} from Debian", flush=True)
        sh(["apt-get", "update", "-qq"])
        sh(["apt-get", "install", "-y", "-qq", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def build():
    print("building release binaries (portcullis-gateway, pingora-floor)", flush=True)
    sh(["cargo", "build", "--release", "--quiet", "-p", "portcullis-gateway", "-p", "portcullis-bench-floor"], cwd=ROOT)


def wait_port(port, proc, name, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on {port}")


def descendants(pid):
    """pid and all its descendants (nginx and haproxy fork workers)."""
    out = {pid}
    changed = True
    while changed:
        changed = False
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in out:
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if ppid in out:
                out.add(int(entry))
                changed = True
    return out


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def peak_rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            m = re.search(r"VmHWM:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
            total += int(m.group(1)) if m else 0
        except OSError:
            pass
    return total


def parse_wrk(text):
    def dur(s):
        m = re.match(r"([\d.]+)(us|ms|s)", s)
        v, u = float(m.group(1)), m.group(2)
        return v * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]

    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))}
    for pct in ("50", "99", "99.9"):
        m = re.search(rf"^\s+{re.escape(pct)}(?:\.000)?%\s+(\S+)", text, re.M)
        res[f"p{pct}_ms"] = dur(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    res["non_2xx"] = int(m.group(1)) if m else 0
    return res


class System:
    def __init__(self, name, cmd, port, workdir, env=None):
        self.name, self.cmd, self.port, self.env = name, cmd, port, env
        self.proc = None
        self.workdir = workdir

    def start(self):
        log = open(Path(self.workdir) / f"{self.name}.log", "w")
        self.proc = subprocess.Popen(["taskset", "-c", PROXY_CPU, *self.cmd], stdout=log, stderr=log,
                                     env={**os.environ, **(self.env or {})}, start_new_session=True)
        wait_port(self.port, self.proc, self.name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def write_configs(d):
    d = Path(d)
    (d / "upstream.conf").write_text(f"""
worker_processes 1; daemon off; pid {d}/upstream.pid; error_log {d}/upstream-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{UPSTREAM_PORT}; location / {{ return 200 "hello from upstream\\n"; }} }} }}
""")
    (d / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream up {{ server 127.0.0.1:{UPSTREAM_PORT}; keepalive 128; }}
  server {{ listen 127.0.0.1:{PORTS['nginx']};
    location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
    (d / "haproxy.cfg").write_text(f"""
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:{PORTS['haproxy']}
  default_backend be
backend be
  server up 127.0.0.1:{UPSTREAM_PORT}
""")
    (d / "pingora.yml").write_text("---\nversion: 1\nthreads: 1\n")
    (d / "rules.yml").write_text(f"""
- id: passthrough
  match:
    url: http://127.0.0.1:{PORTS['portcullis']}/<.*>
    methods: [GET]
  upstream:
    url: http://127.0.0.1:{UPSTREAM_PORT}
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
""")
    (d / "oathkeeper.yml").write_text(f"""
log:
  level: warn
serve:
  proxy: {{host: 127.0.0.1, port: {PORTS['portcullis']}}}
  api: {{host: 127.0.0.1, port: {PORTCULLIS_API_PORT}}}
  prometheus: {{host: 127.0.0.1, port: {PORTCULLIS_METRICS_PORT}}}
access_rules:
  repositories: [file://{d}/rules.yml]
  matching_strategy: regexp
authenticators:
  noop: {{enabled: true}}
authorizers:
  allow: {{enabled: true}}
mutators:
  noop: {{enabled: true}}
""")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round of 5 s per system (about 1 minute)")
    ap.add_argument("--duration", type=int, default=None, help="seconds per run (default 15, quick 5)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 3, quick 1)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    duration = args.duration or (5 if args.quick else 15)
    rounds = args.rounds or (1 if args.quick else 3)

    ensure_packages()
    if not args.no_build:
        build()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    release = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"

    work = tempfile.mkdtemp(prefix="portcullis-bench-")
    write_configs(work)
    upstream = subprocess.Popen(["taskset", "-c", LOAD_CPU, nginx, "-c", f"{work}/upstream.conf", "-e", f"{work}/upstream-error.log"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_port(UPSTREAM_PORT, upstream, "upstream nginx")

    systems = [
        System("pingora-floor", [str(release / "portcullis-bench-floor"), "-c", f"{work}/pingora.yml"], PORTS["pingora-floor"], work,
               env={"FLOOR_LISTEN": f"127.0.0.1:{PORTS['pingora-floor']}", "FLOOR_UPSTREAM": f"127.0.0.1:{UPSTREAM_PORT}"}),
        System("portcullis", [str(release / "portcullis-gateway"), "serve", "-c", f"{work}/oathkeeper.yml"], PORTS["portcullis"], work,
               # Pingora threads follow available_parallelism, which honours the taskset pinning: 1.
               env={"LOG_LEVEL": "warn"}),
        System("nginx", [nginx, "-c", f"{work}/nginx.conf", "-e", f"{work}/nginx-error.log"], PORTS["nginx"], work),
        System("haproxy", [haproxy, "-f", f"{work}/haproxy.cfg"], PORTS["haproxy"], work),
    ]
    runs = {s.name: [] for s in systems}
    try:
        for r in range(rounds):
            for s in systems:
                s.start()
                url = f"http://127.0.0.1:{s.port}/bench"
                sh(["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c4", "-d1s", url], stdout=subprocess.DEVNULL)  # warm-up
                pids = descendants(s.proc.pid)
                cpu0 = cpu_seconds(pids)
                out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{args.connections}", f"-d{duration}s",
                                      "--latency", url], check=True, capture_output=True, text=True).stdout
                cpu = cpu_seconds(pids) - cpu0
                res = parse_wrk(out)
                res["cpu_s"] = cpu
                res["cpu_us_per_req"] = cpu / res["requests"] * 1e6 if res["requests"] else None
                res["peak_rss_kib"] = peak_rss_kib(pids)
                runs[s.name].append(res)
                print(f"round {r + 1}/{rounds} {s.name:14s} {res['rps']:10.0f} req/s  p99 {res['p99_ms']:.2f} ms  "
                      f"{res['cpu_us_per_req']:.1f} µs CPU/req  non-2xx {res['non_2xx']}", flush=True)
                s.stop()
    finally:
        for s in systems:
            s.stop()
        os.killpg(upstream.pid, signal.SIGTERM)

    def median(xs):
        xs = sorted(x for x in xs if x is not None)
        return xs[len(xs) // 2] if xs else None

    summary = {}
    for name, rs in runs.items():
        summary[name] = {k: median([r[k] for r in rs]) for k in rs[0]}
    nginx_rps = summary["nginx"]["rps"]
    floor = summary["pingora-floor"]
    for name, s in summary.items():
        s["rps_vs_nginx"] = s["rps"] / nginx_rps
        s["rps_vs_floor"] = s["rps"] / floor["rps"]
        s["cpu_vs_floor"] = s["cpu_us_per_req"] / floor["cpu_us_per_req"]

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'unknown cpu'}",
        "command": " ".join(["python3", "bench/run.py", *sys.argv[1:]]),
        "scenario": "pass-through: GET, keep-alive, small body; portcullis rule noop -> allow -> noop",
        "load": f"wrk -t1 -c{args.connections} -d{duration}s, {rounds} alternating rounds, median reported",
        "pinning": f"proxy on CPU {PROXY_CPU} with one worker thread; wrk and upstream nginx on CPU {LOAD_CPU}",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=2))
    lines = [f"Pass-through, {meta['date']}, `{meta['command']}`  ",
             f"{meta['machine']}; {meta['pinning']}; {meta['load']}.", "",
             "| system | req/s | × nginx | × floor | p50 ms | p99 ms | p99.9 ms | CPU µs/req | CPU × floor | peak RSS MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    def f(v, spec):
        return "–" if v is None else format(v, spec)

    for name, s in summary.items():
        lines.append(f"| {name} | {f(s['rps'], '.0f')} | {f(s['rps_vs_nginx'], '.2f')} | {f(s['rps_vs_floor'], '.2f')} | "
                     f"{f(s['p50_ms'], '.2f')} | {f(s['p99_ms'], '.2f')} | {f(s['p99.9_ms'], '.2f')} | "
                     f"{f(s['cpu_us_per_req'], '.1f')} | {f(s['cpu_vs_floor'], '.2f')} | {s['peak_rss_kib'] / 1024:.1f} |")
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
