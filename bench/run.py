#!/usr/bin/env python3
"""Side-by-side load runs on loopback: the Portcullis gateway and identity against their peers.

Scenarios (issue #8; select with --scenarios 1,2,...; default all):
  1 pass-through: gateway (noop -> allow -> noop) vs a bare Pingora proxy, nginx and HAProxy
  2 JWT RS256: gateway `jwt` (JWKS file) with and without its verified-token cache vs HAProxy jwt_verify
  3 cookie_session against portcullis-identity on PostgreSQL, with and without the session cache
  4 id_token mutator (ES256 and RS256, cached and signed per request) vs pass-through
  5 /decisions behind nginx auth_request (keep-alive and new connection) vs a trivial auth endpoint
  6 10 / 1 000 / 10 000 rules end to end
  7 identity: whoami under wrk (identity and PostgreSQL CPU per request), then identity/examples/bench.rs
    (logins, registrations) on PostgreSQL and SQLite
  8 operator propagation: measured by the operator's process e2e (needs an API server), pointer only
  9 memory: gateway RSS idle and under load with 10 000 rules (from 6), identity RSS under load (from 3)

Every system is driven by the same load generator (wrk) with the same connections and duration,
and the variants of a scenario alternate round by round, so slow drift of the machine hits all of
them alike. For each run the CPU seconds (utime+stime, from /proc) and peak RSS of the measured
processes (the proxy; for scenario 5 the front nginx plus the auth endpoint) are read, which gives
CPU microseconds per request: the robust figure on a small shared machine.

This machine has 2 cores shared by the load generator, the backends and the proxy: the proxy is
pinned to CPU 0 (one worker thread); wrk, the upstream nginx and identity share CPU 1. Compare
ratios measured in the same run, not absolute numbers. /proc/loadavg is recorded before each
scenario: other work on the machine shows there.

Usage: python3 bench/run.py [--quick] [--scenarios 1,2,3] [--duration S] [--rounds N]
Writes bench/results/latest.json and bench/results/latest.md.
"""

import argparse
import base64
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
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
UPSTREAM_PORT = 18080
PORTS = {"nginx": 18081, "haproxy": 18082, "pingora-floor": 18083, "portcullis": 18084}
PORTCULLIS_API_PORT = 18085
PORTCULLIS_METRICS_PORT = 18086
IDENTITY_PUBLIC_PORT = 18087
IDENTITY_ADMIN_PORT = 18088
AUTH_FRONT_PORT = 18089
TRIVIAL_AUTH_PORT = 18090
PROXY_CPU = "0"
LOAD_CPU = "1"
JWT_ISSUER = "https://issuer.bench.example/"
# More distinct tokens than the gateway's verified-token cache holds (10 000), sent round-robin:
# every request misses the cache and pays for the signature.
JWT_ROTATING_TOKENS = 12_000


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def loadavg():
    return Path("/proc/loadavg").read_text().split(" ")[:3]


def ensure_packages():
    missing = [p for p, exe in (("nginx-light", "nginx"), ("haproxy", "haproxy"), ("wrk", "wrk"))
               if shutil.which(exe) is None and not Path(f"/usr/sbin/{exe}").exists()]
    if missing:
        print(f"installing {' '.join(missing)} from Debian", flush=True)
        sh(["apt-get", "update", "-qq"])
        sh(["apt-get", "install", "-y", "-qq", *missing], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def build(identity):
    pkgs = ["-p", "portcullis-gateway", "-p", "portcullis-bench-floor"]
    if identity:
        pkgs += ["-p", "portcullis-identity"]
    print(f"building release binaries ({' '.join(pkgs[1::2])})", flush=True)
    # The floor gets the gateway binary's allocator (mimalloc), so the ratio compares
    # proxy work, not allocators (gateway/benches/profile.sh does the same).
    sh(["cargo", "build", "--release", "--quiet", *pkgs, "--bins",
        "--features", "portcullis-bench-floor/mimalloc"], cwd=ROOT)


def wait_port(port, proc, name, timeout=60):
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


def wait_http(url, proc, name, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready at {url}")


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


def rss_kib(pids, field):
    """Sum of a /proc/<pid>/status memory field (VmHWM: peak, VmRSS: now)."""
    total = 0
    for pid in pids:
        try:
            m = re.search(rf"{field}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
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
    m = re.search(r"^p99.9_us (\d+)", text, re.M)
    res["p99.9_ms"] = int(m.group(1)) / 1000 if m else None
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{re.escape(pct)}(?:\.000)?%\s+(\S+)", text, re.M)
        res[f"p{pct}_ms"] = dur(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    res["requests"] = int(m.group(1)) if m else 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: .*", text)
    res["socket_errors"] = m.group(0) if m else None
    return res


class Proc:
    """One process of a system under test, pinned to a CPU, in its own process group."""

    def __init__(self, name, cmd, port=None, cpu=PROXY_CPU, env=None, ready_url=None):
        self.name, self.cmd, self.port, self.cpu, self.env, self.ready_url = name, cmd, port, cpu, env, ready_url
        self.proc = None

    def start(self, workdir):
        log = open(Path(workdir) / f"{self.name}.log", "a")
        self.proc = subprocess.Popen(["taskset", "-c", self.cpu, *self.cmd], stdout=log, stderr=log,
                                     env={**os.environ, **(self.env or {})}, start_new_session=True)
        if self.ready_url:
            wait_http(self.ready_url, self.proc, self.name)
        elif self.port:
            wait_port(self.port, self.proc, self.name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


class Variant:
    """One system in a scenario: the processes it starts (all measured), the URL wrk loads, and
    optional wrk arguments (headers, a Lua script)."""

    def __init__(self, name, procs, url, wrk_args=None, note=""):
        wrk_args = [] if wrk_args is None else wrk_args
        # wrk_args is kept by reference: scenario 3 fills in its cookie once identity is up.
        self.name, self.procs, self.url, self.wrk_args, self.note = name, procs, url, wrk_args, note


class Scenario:
    def __init__(self, key, title, variants, refs, note="", background=(), aux=None):
        self.key, self.title, self.variants, self.refs, self.note = key, title, variants, refs, note
        self.background = list(background)  # started once for the scenario, not measured
        self.aux = aux  # name of a background Proc whose CPU/RSS is reported too (identity)


DONE_LUA = """
done = function(summary, latency, requests)
  io.write(string.format("p99.9_us %d\\n", latency:percentile(99.9)))
end
"""


def with_done(work, args):
    """wrk arguments whose Lua script (or a new one) also prints the 99.9th percentile, which
    `--latency` leaves out."""
    args = list(args)
    if "-s" in args:
        i = args.index("-s") + 1
        src = Path(args[i])
        combined = Path(work) / f"{src.stem}-done.lua"
        combined.write_text(src.read_text() + DONE_LUA)
        args[i] = str(combined)
    else:
        done = Path(work) / "done.lua"
        done.write_text(DONE_LUA)
        args += ["-s", str(done)]
    return args


def gateway_cache_counters():
    """The gateway's cache lookups so far ({"jwt hit": n, ...}), from its metrics port; empty when
    no gateway is running. Shows whether a "cached" or "uncached" variant really was."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORTCULLIS_METRICS_PORT}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    found = re.findall(r'^portcullis_gateway_cache_requests_total\{cache="([^"]+)",result="([^"]+)"\} (\d+)', text, re.M)
    return {f"{c} {res}": int(n) for c, res, n in found}


def run_scenario(sc, work, duration, rounds, connections):
    print(f"\n== scenario {sc.key}: {sc.title}", flush=True)
    load_before = loadavg()
    for p in sc.background:
        p.start(work)
    runs = {v.name: [] for v in sc.variants}
    try:
        for r in range(rounds):
            for v in sc.variants:
                for p in v.procs:
                    p.start(work)
                try:
                    pids = set()
                    for p in v.procs:
                        pids |= descendants(p.proc.pid)
                    idle_rss = rss_kib(pids, "VmRSS")
                    sh(["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c4", "-d1s", *v.wrk_args, v.url],
                       stdout=subprocess.DEVNULL, env={**os.environ, "WRK_WARMUP": "1"})  # warm-up
                    aux = next((p for p in sc.background if p.name == sc.aux), None)
                    aux_pids = descendants(aux.proc.pid) if aux else set()
                    lookups0 = gateway_cache_counters()
                    cpu0, aux0 = cpu_seconds(pids), cpu_seconds(aux_pids)
                    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
                                          "--latency", *with_done(work, v.wrk_args), v.url], check=True, capture_output=True, text=True).stdout
                    cpu, aux_cpu = cpu_seconds(pids) - cpu0, cpu_seconds(aux_pids) - aux0
                    res = parse_wrk(out)
                    res["cpu_s"] = cpu
                    res["cpu_us_per_req"] = cpu / res["requests"] * 1e6 if res["requests"] else None
                    res["peak_rss_kib"] = rss_kib(pids, "VmHWM")
                    res["cache_lookups"] = {k: n - lookups0.get(k, 0) for k, n in gateway_cache_counters().items()}
                    res["idle_rss_kib"] = idle_rss
                    if aux:
                        res["aux_cpu_us_per_req"] = aux_cpu / res["requests"] * 1e6 if res["requests"] else None
                        res["aux_peak_rss_kib"] = rss_kib(aux_pids, "VmHWM")
                    runs[v.name].append(res)
                    flag = f"  non-2xx {res['non_2xx']}" if res["non_2xx"] else ""
                    if res["cache_lookups"]:
                        flag += "  cache " + ", ".join(f"{k} {n}" for k, n in sorted(res["cache_lookups"].items()))
                    print(f"round {r + 1}/{rounds} {v.name:44s} {res['rps']:9.0f} req/s  p99 {res['p99_ms'] or 0:7.2f} ms  "
                          f"{res['cpu_us_per_req'] or 0:7.1f} µs CPU/req{flag}", flush=True)
                    if res["non_2xx"]:
                        # Every variant should answer 200: denied requests measure the error path.
                        raise RuntimeError(f"{v.name} answered {res['non_2xx']} non-2xx of {res['requests']} requests")
                finally:
                    for p in reversed(v.procs):
                        p.stop()
    finally:
        for p in reversed(sc.background):
            p.stop()

    def median(xs):
        xs = sorted(x for x in xs if isinstance(x, (int, float)))
        if not xs:
            return None
        mid = len(xs) // 2
        return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2

    summary = {}
    for name, rs in runs.items():
        summary[name] = {k: median([r.get(k) for r in rs]) for k in rs[0] if k != "cache_lookups"}
        summary[name]["cache_lookups"] = rs[-1].get("cache_lookups") or {}
    for name, s in summary.items():
        for ref in sc.refs:
            base = summary[ref]
            s[f"rps_vs:{ref}"] = s["rps"] / base["rps"] if base["rps"] else None
            s[f"cpu_vs:{ref}"] = (s["cpu_us_per_req"] / base["cpu_us_per_req"]
                                  if s["cpu_us_per_req"] and base["cpu_us_per_req"] else None)
    return {"title": sc.title, "note": sc.note, "loadavg_before": load_before, "refs": sc.refs,
            "notes": {v.name: v.note for v in sc.variants}, "summary": summary, "runs": runs}


def fmt(v, spec):
    return "–" if v is None else format(v, spec)


def table(key, res):
    s = res["summary"]
    refs = res["refs"]
    head = ["system", "req/s", *[f"× {r}" for r in refs], "p50 ms", "p99 ms", "p99.9 ms", "CPU µs/req",
            *[f"CPU × {r}" for r in refs], "peak RSS MiB", "non-2xx"]
    has_aux = any("aux_cpu_us_per_req" in v for v in s.values())
    if has_aux:
        head += ["identity CPU µs/req", "identity peak RSS MiB"]
    lines = [f"### Scenario {key}: {res['title']}", "",
             f"loadavg before: {' '.join(res['loadavg_before'])}", "",
             "| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for name, v in s.items():
        row = [name, fmt(v["rps"], ".0f"), *[fmt(v.get(f"rps_vs:{r}"), ".2f") for r in refs],
               fmt(v["p50_ms"], ".2f"), fmt(v["p99_ms"], ".2f"), fmt(v["p99.9_ms"], ".2f"),
               fmt(v["cpu_us_per_req"], ".1f"), *[fmt(v.get(f"cpu_vs:{r}"), ".2f") for r in refs],
               fmt(v["peak_rss_kib"] / 1024 if v["peak_rss_kib"] else None, ".1f"), str(int(v["non_2xx"] or 0))]
        if has_aux:
            row += [fmt(v.get("aux_cpu_us_per_req"), ".1f"),
                    fmt(v["aux_peak_rss_kib"] / 1024 if v.get("aux_peak_rss_kib") else None, ".1f")]
        lines.append("| " + " | ".join(row) + " |")
    def note(n, t):
        lookups = s[n].get("cache_lookups") or {}
        counted = ", ".join(f"{k} {v}" for k, v in sorted(lookups.items()))
        return "; ".join(x for x in (t, f"gateway cache lookups in the measured run (last round): {counted}" if counted else "") if x)

    notes = [f"- {n}: {note(n, t)}" for n, t in res["notes"].items() if note(n, t)]
    if res["note"] or notes:
        lines += ["", *([res["note"]] if res["note"] else []), *notes]
    return lines


# ---------------------------------------------------------------------------------------------
# Configuration files


def nginx_conf(d, name, port, body):
    (d / f"{name}.conf").write_text(f"""
worker_processes 1; daemon off; pid {d}/{name}.pid; error_log {d}/{name}-error.log;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
{body}
}}
""")
    return d / f"{name}.conf"


def gateway_config(d, name, rules_file, handlers):
    path = d / f"{name}.oathkeeper.yml"
    path.write_text(f"""
log:
  level: warn
serve:
  proxy: {{host: 127.0.0.1, port: {PORTS['portcullis']}}}
  api: {{host: 127.0.0.1, port: {PORTCULLIS_API_PORT}}}
  prometheus: {{host: 127.0.0.1, port: {PORTCULLIS_METRICS_PORT}}}
access_rules:
  repositories: [file://{rules_file}]
  matching_strategy: regexp
{handlers}
""")
    return path


PASS_HANDLERS = """
authenticators:
  noop: {enabled: true}
authorizers:
  allow: {enabled: true}
mutators:
  noop: {enabled: true}
"""


def rule(rid, path, authn="noop", mutators="[{handler: noop}]", upstream=True):
    up = f"\n  upstream: {{url: 'http://127.0.0.1:{UPSTREAM_PORT}'}}" if upstream else ""
    return f"""
- id: {rid}
  match: {{url: 'http://127.0.0.1:{PORTS['portcullis']}{path}', methods: [GET]}}{up}
  authenticators: [{{handler: {authn}}}]
  authorizer: {{handler: allow}}
  mutators: {mutators}
"""


class Env:
    """Paths and binaries shared by the scenarios."""

    def __init__(self, work, release):
        self.d = Path(work)
        self.release = release
        self.nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"

    def gateway(self, name, config, env=None):
        return Proc(name, [str(self.release / "portcullis-gateway"), "serve", "-c", str(config)],
                    ready_url=f"http://127.0.0.1:{PORTCULLIS_API_PORT}/health/ready",
                    env={"LOG_LEVEL": "warn", **(env or {})})

    def nginx_proc(self, name, conf, port, cpu=PROXY_CPU):
        return Proc(name, [self.nginx, "-c", str(conf), "-e", f"{self.d}/{name}-error.log"], port=port, cpu=cpu)

    def haproxy_proc(self, name, cfg):
        return Proc(name, [self.haproxy, "-f", str(cfg)], port=PORTS["haproxy"])


def haproxy_cfg(d, name, frontend_extra=""):
    path = d / f"{name}.cfg"
    path.write_text(f"""
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
{frontend_extra}
  default_backend be
backend be
  server up 127.0.0.1:{UPSTREAM_PORT}
""")
    return path


# ---------------------------------------------------------------------------------------------
# Scenarios


def scenario_passthrough(env):
    d = env.d
    (d / "pingora.yml").write_text("---\nversion: 1\nthreads: 1\n")
    rules = d / "pass.rules.yml"
    rules.write_text(rule("passthrough", "/<.*>"))
    nginx = nginx_conf(d, "nginx-proxy", PORTS["nginx"], f"""
  upstream up {{ server 127.0.0.1:{UPSTREAM_PORT}; keepalive 128; }}
  server {{ listen 127.0.0.1:{PORTS['nginx']};
    location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}""")
    variants = [
        Variant("pingora-floor", [Proc("pingora-floor", [str(env.release / "portcullis-bench-floor"), "-c", f"{d}/pingora.yml"],
                                       port=PORTS["pingora-floor"],
                                       env={"FLOOR_LISTEN": f"127.0.0.1:{PORTS['pingora-floor']}",
                                            "FLOOR_UPSTREAM": f"127.0.0.1:{UPSTREAM_PORT}"})],
                f"http://127.0.0.1:{PORTS['pingora-floor']}/bench", note="bare Pingora 0.9 pass-through"),
        Variant("portcullis", [env.gateway("portcullis", gateway_config(d, "pass", rules, PASS_HANDLERS))],
                f"http://127.0.0.1:{PORTS['portcullis']}/bench", note="noop → allow → noop"),
        Variant("nginx", [env.nginx_proc("nginx", nginx, PORTS["nginx"])], f"http://127.0.0.1:{PORTS['nginx']}/bench",
                note="`proxy_pass`, keepalive upstream"),
        Variant("haproxy", [env.haproxy_proc("haproxy", haproxy_cfg(d, "haproxy-pass"))],
                f"http://127.0.0.1:{PORTS['haproxy']}/bench", note="`http-reuse always`"),
    ]
    return Scenario("1", "pass-through (GET, keep-alive, small body)", variants, ["pingora-floor", "nginx"])


def jwt_material(d):
    """An RSA-2048 key (PEM for HAProxy, JWKS for the gateway), one token, and many distinct tokens.

    Kept under bench/results/jwt/ between runs (signing 12 000 tokens takes a while); the tokens
    expire after 30 days and are regenerated then."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    cache = RESULTS / "jwt"
    cache.mkdir(parents=True, exist_ok=True)
    key_pem, tokens_file = cache / "rs256.key.pem", cache / "tokens.txt"
    fresh = tokens_file.exists() and time.time() - tokens_file.stat().st_mtime < 20 * 86400
    if not (key_pem.exists() and fresh):
        print(f"signing {JWT_ROTATING_TOKENS} RS256 test tokens (kept in {cache})", flush=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))

        def b64(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

        header = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench-rs256"}).encode())
        exp = int(time.time()) + 30 * 86400
        with tokens_file.open("w") as f:
            for i in range(JWT_ROTATING_TOKENS + 1):
                claims = {"iss": JWT_ISSUER, "sub": f"user-{i}", "aud": ["bench"], "exp": exp,
                          "iat": int(time.time()), "scope": "read"}
                signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
                sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
                f.write(f"{signing_input}.{b64(sig)}\n")
    key = serialization.load_pem_private_key(key_pem.read_bytes(), password=None)
    pub = key.public_key()
    (d / "rs256.pub.pem").write_bytes(pub.public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    n = pub.public_numbers()

    def b64int(v):
        return base64.urlsafe_b64encode(v.to_bytes((v.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    (d / "rs256.jwks.json").write_text(json.dumps({"keys": [
        {"kty": "RSA", "kid": "bench-rs256", "use": "sig", "alg": "RS256", "n": b64int(n.n), "e": b64int(n.e)}]}))
    tokens = tokens_file.read_text().split()
    (d / "one-token.txt").write_text(tokens[0] + "\n")
    (d / "rotating-tokens.txt").write_text("\n".join(tokens[1:]) + "\n")
    return tokens[0]


def lua_tokens(d, name, tokens_file, warmup_file):
    """A wrk script sending the tokens of `tokens_file` round-robin; the warm-up run (WRK_WARMUP
    set) sends the token of `warmup_file` instead, so it cannot pre-fill the gateway's cache
    with the tokens the measured run starts with."""
    path = d / f"{name}.lua"
    path.write_text(f"""
local tokens = {{}}
local source = os.getenv("WRK_WARMUP") and "{warmup_file}" or "{tokens_file}"
for line in io.lines(source) do tokens[#tokens + 1] = line end
local i = 0
request = function()
  i = i % #tokens + 1
  wrk.headers["Authorization"] = "Bearer " .. tokens[i]
  return wrk.format()
end
""")
    return path


def scenario_jwt(env):
    d = env.d
    token = jwt_material(d)
    rotating = lua_tokens(d, "rotating", d / "rotating-tokens.txt", d / "one-token.txt")
    rules = d / "jwt.rules.yml"
    rules.write_text(rule("jwt", "/<.*>", authn="jwt"))
    handlers = f"""
authenticators:
  jwt:
    enabled: true
    config:
      jwks_urls: [file://{d}/rs256.jwks.json]
      trusted_issuers: ['{JWT_ISSUER}']
      allowed_algorithms: [RS256]
authorizers:
  allow: {{enabled: true}}
mutators:
  noop: {{enabled: true}}
"""
    cfg = gateway_config(d, "jwt", rules, handlers)
    # HAProxy checks what the gateway checks: alg, issuer, expiry, signature.
    hap = haproxy_cfg(d, "haproxy-jwt", f"""
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request deny deny_status 401 unless {{ var(txn.jwt_alg) -m str RS256 }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {JWT_ISSUER} }}
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request set-var(txn.now) date()
  http-request deny deny_status 401 if {{ var(txn.exp),sub(txn.now) -m int lt 0 }}
  http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify(txn.jwt_alg,"{d}/rs256.pub.pem") -m int 1 }}""")
    one = ["-H", f"Authorization: Bearer {token}"]
    gw_url = f"http://127.0.0.1:{PORTS['portcullis']}/bench"
    hap_url = f"http://127.0.0.1:{PORTS['haproxy']}/bench"
    variants = [
        Variant("haproxy jwt_verify", [env.haproxy_proc("haproxy", hap)], hap_url, ["-s", str(rotating)],
                note=f"{JWT_ROTATING_TOKENS} distinct tokens round-robin (HAProxy has no verified-token cache)"),
        Variant("portcullis jwt, every token new", [env.gateway("portcullis", cfg)], gw_url, ["-s", str(rotating)],
                note=f"the same {JWT_ROTATING_TOKENS} tokens: more than the 10 000-entry cache, so every request verifies"),
        Variant("portcullis jwt, verified-token cache", [env.gateway("portcullis", cfg)], gw_url, one,
                note="one token: verified once, then served from the cache until `exp`"),
        Variant("haproxy jwt_verify, one token", [env.haproxy_proc("haproxy", hap)], hap_url, one),
    ]
    return Scenario("2", "JWT RS256 (2048-bit key), gateway `jwt` vs HAProxy 2.6 `jwt_verify`", variants,
                    ["haproxy jwt_verify"])


def register_browser_cookie(public):
    """Registers through the browser flow (JSON, as a browser's script would) and returns the
    signed `ory_kratos_session=…` cookie identity set (a bare session token is no cookie)."""
    def cookies(response):
        return [c.split(";", 1)[0] for c in response.headers.get_all("Set-Cookie") or []]

    req = urllib.request.Request(f"{public}/self-service/registration/browser", headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        sent = cookies(r)
        flow = json.loads(r.read())
    csrf = next(n["attributes"]["value"] for n in flow["ui"]["nodes"] if n["attributes"].get("name") == "csrf_token")
    body = {"method": "password", "password": "correct horse battery staple", "csrf_token": csrf,
            "traits": {"email": f"{uuid.uuid4().hex}@bench.example"}}
    req = urllib.request.Request(flow["ui"]["action"], data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Accept": "application/json",
                                          "Cookie": "; ".join(sent)})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
        session = [c for c in cookies(r) if c.startswith("ory_kratos_session=")]
    if not session:
        raise RuntimeError("browser registration set no ory_kratos_session cookie")
    return session[0]


def register_user(public):
    def call(url, data=None):
        req = urllib.request.Request(url, data=json.dumps(data).encode() if data else None,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    flow = call(f"{public}/self-service/registration/api")
    answer = call(flow["ui"]["action"], {"method": "password", "password": "correct horse battery staple",
                                         "traits": {"email": f"{uuid.uuid4().hex}@bench.example"}})
    return answer["session_token"]


def identity_proc(env, dsn, name="identity", extra_env=None):
    d = env.d
    (d / "identity.schema.json").write_text((ROOT / "identity/examples/local/identity.schema.json").read_text())
    cfg = d / "kratos.yml"
    cfg.write_text(f"""
version: v26.2.0
serve:
  public: {{base_url: http://127.0.0.1:{IDENTITY_PUBLIC_PORT}/, host: 127.0.0.1, port: {IDENTITY_PUBLIC_PORT}}}
  admin: {{base_url: http://127.0.0.1:{IDENTITY_ADMIN_PORT}/, host: 127.0.0.1, port: {IDENTITY_ADMIN_PORT}}}
identity:
  default_schema_id: default
  schemas: [{{id: default, url: file://{d}/identity.schema.json}}]
selfservice:
  default_browser_return_url: http://127.0.0.1:{IDENTITY_PUBLIC_PORT}/
  methods: {{password: {{enabled: true}}}}
  flows:
    registration: {{after: {{password: {{hooks: [{{hook: session}}]}}}}}}
session: {{lifespan: 24h}}
log: {{level: warn}}
""")
    secrets = {"SECRETS_COOKIE": uuid.uuid4().hex + uuid.uuid4().hex, "SECRETS_CIPHER": uuid.uuid4().hex,
               "SECRETS_DEFAULT": uuid.uuid4().hex + uuid.uuid4().hex}
    return Proc(name, [str(env.release / "portcullis-identity"), "serve", "--dev", "-c", str(cfg)], cpu=LOAD_CPU,
                env={"DSN": dsn, "LOG_LEVEL": "warn", **secrets, **(extra_env or {})},
                ready_url=f"http://127.0.0.1:{IDENTITY_PUBLIC_PORT}/health/ready")


class PgDatabase:
    def __init__(self):
        self.name = f"portcullis_bench_{uuid.uuid4().hex[:12]}"
        self.admin = os.environ.get("PORTCULLIS_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")

    def __enter__(self):
        sh(["psql", self.admin, "-qc", f'CREATE DATABASE "{self.name}"'], stdout=subprocess.DEVNULL)
        return self.admin.rsplit("/", 1)[0] + "/" + self.name

    def __exit__(self, *exc):
        subprocess.run(["psql", self.admin, "-qc", f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class SessionScenario(Scenario):
    """Scenario 3 needs identity up (to register a user) before the variants know their cookie."""

    def __init__(self, env, dsn, ttl):
        d = env.d
        self.identity = identity_proc(env, dsn)
        whoami = f"http://127.0.0.1:{IDENTITY_PUBLIC_PORT}/sessions/whoami"

        def handlers(cache):
            return f"""
authenticators:
  noop: {{enabled: true}}
  cookie_session:
    enabled: true
    config:
      check_session_url: {whoami}
      preserve_path: true
      only: [ory_kratos_session]
      subject_from: identity.id
      extra_from: "@this"{cache}
authorizers:
  allow: {{enabled: true}}
mutators:
  noop: {{enabled: true}}
"""
        rules = d / "session.rules.yml"
        rules.write_text(rule("pass", "/pass") + rule("session", "/bench", authn="cookie_session"))
        plain = gateway_config(d, "session", rules, handlers(""))
        cached = gateway_config(d, "session-cached", rules,
                                handlers(f"\n      cache: {{enabled: true, ttl: {ttl}, max_entries: 10000}}"))
        base = f"http://127.0.0.1:{PORTS['portcullis']}"
        self.cookie_args = []
        variants = [
            Variant("portcullis pass-through", [env.gateway("portcullis", plain)], f"{base}/pass", self.cookie_args,
                    note="same gateway and cookie, rule noop → allow → noop"),
            Variant("cookie_session, no cache", [env.gateway("portcullis", plain)], f"{base}/bench", self.cookie_args,
                    note="every request calls identity's /sessions/whoami (PostgreSQL); Oathkeeper's behaviour"),
            Variant(f"cookie_session, session cache (ttl {ttl})", [env.gateway("portcullis", cached)], f"{base}/bench",
                    self.cookie_args, note="one whoami per ttl for this cookie"),
        ]
        super().__init__("3", "`cookie_session` against portcullis-identity on PostgreSQL", variants,
                         ["portcullis pass-through"], background=[self.identity], aux="identity")

    def prepare(self):
        cookie = register_browser_cookie(f"http://127.0.0.1:{IDENTITY_PUBLIC_PORT}")
        self.cookie_args += ["-H", f"Cookie: {cookie}"]


def scenario_id_token(env):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    d = env.d
    for name, key in (("es256", ec.generate_private_key(ec.SECP256R1())),
                      ("rs256-sign", rsa.generate_private_key(public_exponent=65537, key_size=2048))):
        (d / f"{name}.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))

    def handlers(key):
        return f"""
authenticators:
  anonymous: {{enabled: true}}
  noop: {{enabled: true}}
authorizers:
  allow: {{enabled: true}}
mutators:
  noop: {{enabled: true}}
  id_token:
    enabled: true
    config: {{issuer_url: 'https://gateway.bench.example/', jwks_url: 'file://{d}/{key}.pem', ttl: 10m}}
"""
    claims = """{handler: id_token, config: {claims: '{"aud": ["upstream"], "path": "{{ print .MatchContext.URL.Path }}"}'}}"""
    rules = d / "id_token.rules.yml"
    rules.write_text(rule("pass", "/pass") + rule("token", "/bench/<.*>", authn="anonymous", mutators=f"[{claims}]"))
    per_request = d / "distinct-paths.lua"
    per_request.write_text("""
local i = 0
local prefix = os.getenv("WRK_WARMUP") and "/bench/warm-up-" or "/bench/"
request = function()
  i = i + 1
  return wrk.format(nil, prefix .. i)
end
""")
    es, rs = gateway_config(d, "id-es", rules, handlers("es256")), gateway_config(d, "id-rs", rules, handlers("rs256-sign"))
    base = f"http://127.0.0.1:{PORTS['portcullis']}"
    variants = [
        Variant("portcullis pass-through", [env.gateway("portcullis", es)], f"{base}/pass"),
        Variant("id_token ES256, cached token", [env.gateway("portcullis", es)], f"{base}/bench/same",
                note="same subject and claims: signed once, reused until 90 % of ttl"),
        Variant("id_token ES256, signed per request", [env.gateway("portcullis", es)], f"{base}/bench/x",
                ["-s", str(per_request)], note="a distinct path per request goes into a claim: every token is new"),
        Variant("id_token RS256, signed per request", [env.gateway("portcullis", rs)], f"{base}/bench/x",
                ["-s", str(per_request)], note="RSA-2048 PKCS#1 v1.5 signature per request"),
    ]
    return Scenario("4", "`id_token` mutator (anonymous → allow → id_token) vs pass-through", variants,
                    ["portcullis pass-through"])


def scenario_auth_request(env):
    d = env.d
    rules = d / "decisions.rules.yml"
    rules.write_text(f"""
- id: decide
  match: {{url: 'http://app.bench.example/<.*>', methods: [GET]}}
  authenticators: [{{handler: noop}}]
  authorizer: {{handler: allow}}
  mutators: [{{handler: noop}}]
""")
    gw = gateway_config(d, "decisions", rules, PASS_HANDLERS)

    def front(name, auth_target, keepalive):
        pool = f"keepalive 64;" if keepalive else ""
        conn = 'proxy_http_version 1.1; proxy_set_header Connection "";' if keepalive else ""
        trivial = (f'server {{ listen 127.0.0.1:{TRIVIAL_AUTH_PORT}; location / {{ return 200; }} }}'
                   if auth_target == TRIVIAL_AUTH_PORT else "")
        return nginx_conf(d, name, AUTH_FRONT_PORT, f"""
  upstream up {{ server 127.0.0.1:{UPSTREAM_PORT}; keepalive 128; }}
  upstream auth {{ server 127.0.0.1:{auth_target}; {pool} }}
  {trivial}
  server {{ listen 127.0.0.1:{AUTH_FRONT_PORT};
    location = /_auth {{ internal;
      proxy_pass http://auth/decisions$request_uri; {conn}
      proxy_pass_request_body off; proxy_set_header Content-Length "";
      proxy_set_header X-Forwarded-Method $request_method; proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host app.bench.example; proxy_set_header X-Forwarded-Uri $request_uri; }}
    location / {{ auth_request /_auth;
      proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}""")

    url = f"http://127.0.0.1:{AUTH_FRONT_PORT}/bench"
    variants = []
    for keepalive, label in ((True, "keep-alive"), (False, "new connection")):
        variants.append(Variant(f"nginx + return 200 auth, {label}",
                                [env.nginx_proc(f"front-trivial-{label[:3]}", front(f"front-trivial-{label[:3]}", TRIVIAL_AUTH_PORT, keepalive), AUTH_FRONT_PORT)],
                                url, note="auth endpoint: a `return 200` server in the same nginx" if keepalive else ""))
        variants.append(Variant(f"nginx + portcullis /decisions, {label}",
                                [env.gateway("portcullis", gw),
                                 env.nginx_proc(f"front-gw-{label[:3]}", front(f"front-gw-{label[:3]}", PORTCULLIS_API_PORT, keepalive), AUTH_FRONT_PORT)],
                                url, note="gateway API port pinned with nginx on CPU 0; CPU is both processes" if keepalive else
                                "ingress-nginx's default: one new connection per auth subrequest"))
    return Scenario("5", "`/decisions` behind nginx `auth_request` (noop → allow → noop)", variants,
                    ["nginx + return 200 auth, keep-alive", "nginx + return 200 auth, new connection"])


def scenario_rule_count(env, counts=(10, 1000, 10_000)):
    d = env.d
    variants = []
    for n in counts:
        # JSON: one YAML file of 10 000 rules exceeds the YAML parser's node budget (250 000).
        rules = d / f"rules-{n}.json"
        docs = []
        for i in range(n):
            # A mix of shapes: literal prefixes, a capture in the middle, a look-ahead.
            path = (f"/svc{i}/<.*>", f"/api/v{i % 7}/svc{i}/<[0-9]+>", f"/app{i}/<(?!admin).*>")[i % 3]
            docs.append({"id": f"rule-{i}",
                         "match": {"url": f"http://127.0.0.1:{PORTS['portcullis']}{path}", "methods": ["GET"]},
                         "upstream": {"url": f"http://127.0.0.1:{UPSTREAM_PORT}"},
                         "authenticators": [{"handler": "noop"}], "authorizer": {"handler": "allow"},
                         "mutators": [{"handler": "noop"}]})
        rules.write_text(json.dumps(docs))
        target = n - 1 - (n - 1) % 3  # the last rule of the first shape
        cfg = gateway_config(d, f"rules-{n}", rules, PASS_HANDLERS)
        variants.append(Variant(f"{n} rules", [env.gateway("portcullis", cfg)],
                                f"http://127.0.0.1:{PORTS['portcullis']}/svc{target}/bench",
                                note=f"hits rule-{target}"))
    return Scenario("6", "rule count end to end (regexp, pass-through handlers)", variants, [f"{counts[0]} rules"],
                    note="RSS idle is read after start-up, before any request (scenario 9).")


def postgres_pids():
    """The PostgreSQL server's processes (postmaster and backends), whose CPU a whoami costs too."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/comm").read_text().strip() in ("postgres", "postmaster"):
                    out.add(int(entry))
            except OSError:
                pass
    return out


def whoami_cache_counts():
    """(hits, misses) of identity's whoami cache from its metrics; (None, None) when it has none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{IDENTITY_ADMIN_PORT}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None, None
    found = {}
    for line in text.splitlines():
        if line.startswith("portcullis_identity_whoami_cache_lookups_total{"):
            found["hit" if 'result="hit"' in line else "miss"] = int(float(line.rsplit(" ", 1)[1]))
    return found.get("hit"), found.get("miss")


def whoami_wrk(env, work, db, seconds, connections, cache=True):
    """GET /sessions/whoami with one session token, driven by wrk (one thread) against the
    identity binary, neither pinned: requests/s and the CPU µs per request of identity and of
    PostgreSQL's processes (whose backends serve identity's pool). `cache=False` turns
    identity's whoami cache off (PostgreSQL: every whoami is a query)."""
    def run(dsn):
        extra = {} if cache else {"PORTCULLIS_WHOAMI_CACHE_ENABLED": "false"}
        ident = identity_proc(env, dsn, name=f"identity-whoami-{db}", extra_env=extra)
        ident.cpu = "0,1"
        ident.start(work)
        try:
            token = register_user(f"http://127.0.0.1:{IDENTITY_PUBLIC_PORT}")
            url = f"http://127.0.0.1:{IDENTITY_PUBLIC_PORT}/sessions/whoami"
            args = ["-H", f"X-Session-Token: {token}"]
            sh(["wrk", "-t1", "-c4", "-d1s", *args, url], stdout=subprocess.DEVNULL)  # warm-up
            pids = descendants(ident.proc.pid)
            la = loadavg()
            cpu0, pg0 = cpu_seconds(pids), {pid: cpu_seconds({pid}) for pid in postgres_pids()}
            hits0, misses0 = whoami_cache_counts()
            out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *with_done(work, args), url],
                                 check=True, capture_output=True, text=True).stdout
            # Per process: backends that connected during the run count in full.
            cpu = cpu_seconds(pids) - cpu0
            pg_cpu = sum(cpu_seconds({pid}) - pg0.get(pid, 0) for pid in postgres_pids())
            res = parse_wrk(out)
            hits1, misses1 = whoami_cache_counts()
            n = res["requests"] or 1
            if hits0 is not None and hits1 is not None:
                res.update(cache_hits=hits1 - hits0, cache_misses=misses1 - misses0)
            res.update(loadavg_before=la, identity_cpu_us_per_req=cpu / n * 1e6,
                       postgres_cpu_us_per_req=pg_cpu / n * 1e6 if db == "postgres" else None,
                       identity_peak_rss_kib=rss_kib(pids, "VmHWM"))
            return res
        finally:
            ident.stop()

    if db == "postgres":
        with PgDatabase() as dsn:
            # No TLS to a database on the same host (sqlx would negotiate it: sslmode=prefer).
            return run(dsn + "?sslmode=disable")
    return run(f"sqlite://{work}/whoami-bench.sqlite?mode=rwc")


def run_identity_bench(env, work, release, quick, connections):
    seconds, conc = ("2", "64") if quick else ("6", "64")
    out = {}
    for db in ("postgres", "sqlite"):
        variants = [("whoami_wrk", True)] + ([("whoami_wrk_nocache", False)] if db == "postgres" else [])
        measured = {}
        for key, cache in variants:
            label = db if cache or db == "sqlite" else f"{db}, whoami cache off"
            print(f"\n== scenario 7: identity whoami under wrk, {label}", flush=True)
            w = whoami_wrk(env, work, db, int(seconds), connections, cache=cache)
            pg = f", PostgreSQL {w['postgres_cpu_us_per_req']:.1f}" if w["postgres_cpu_us_per_req"] is not None else ""
            hits = f", cache hits {w['cache_hits']} misses {w['cache_misses']}" if "cache_hits" in w else ", no cache"
            print(f"whoami (wrk, {connections} connections): {w['rps']:.0f} req/s, p99 {w['p99_ms'] or 0:.2f} ms, "
                  f"CPU µs/req identity {w['identity_cpu_us_per_req']:.1f}{pg}{hits}", flush=True)
            measured[key] = w
        print(f"\n== scenario 7: identity bench {db}", flush=True)
        la = loadavg()
        text = subprocess.run([str(release / "examples" / "bench"), db, seconds, conc], check=True,
                              capture_output=True, text=True, cwd=ROOT, env={**os.environ, "LOG_LEVEL": "warn"}).stdout
        print(text, flush=True)
        out[db] = {"loadavg_before": la, "output": text.strip(), **measured}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 round of 2 s per system (under 2 minutes)")
    ap.add_argument("--scenarios", default="1,2,3,4,5,6,7,8,9", help="comma-separated scenario numbers")
    ap.add_argument("--duration", type=int, default=None, help="seconds per run (default 6, quick 2)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 2, quick 1)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--session-ttl", default="10s", help="session cache ttl in scenario 3")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    duration = args.duration or (2 if args.quick else 6)
    rounds = args.rounds or (1 if args.quick else 2)
    chosen = {s.strip() for s in args.scenarios.split(",") if s.strip()}
    if "9" in chosen:
        chosen |= {"3", "6"}

    ensure_packages()
    release = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release"
    if not args.no_build:
        build(identity=bool(chosen & {"3", "7"}))
        if "7" in chosen:
            sh(["cargo", "build", "--release", "--quiet", "-p", "portcullis-identity", "--example", "bench"], cwd=ROOT)

    work = tempfile.mkdtemp(prefix="portcullis-bench-")
    env = Env(work, release)
    started = time.time()
    upstream = Proc("upstream", [env.nginx, "-c", str(nginx_conf(env.d, "upstream", UPSTREAM_PORT, f"""
  server {{ listen 127.0.0.1:{UPSTREAM_PORT}; location / {{ return 200 "hello from upstream\\n"; }} }}""")),
                                 "-e", f"{work}/upstream-error.log"], port=UPSTREAM_PORT, cpu=LOAD_CPU)
    upstream.start(work)
    results, failed = {}, {}
    try:
        builders = {"1": scenario_passthrough, "2": scenario_jwt, "4": scenario_id_token, "5": scenario_auth_request,
                    "6": scenario_rule_count}
        for key in ("1", "2", "3", "4", "5", "6", "7"):
            if key not in chosen:
                continue
            # A scenario that cannot run (no PostgreSQL, a binary that exits) is reported, and the
            # others still run.
            try:
                if key == "3":
                    with PgDatabase() as dsn:
                        sc = SessionScenario(env, dsn, args.session_ttl)
                        sc.identity.start(work)
                        try:
                            sc.prepare()
                        finally:
                            sc.identity.stop()
                        results[key] = run_scenario(sc, work, duration, rounds, args.connections)
                elif key == "7":
                    results[key] = run_identity_bench(env, work, release, args.quick, args.connections)
                else:
                    results[key] = run_scenario(builders[key](env), work, duration, rounds, args.connections)
            except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                print(f"scenario {key} failed: {e} (logs in {work})", file=sys.stderr, flush=True)
                failed[key] = str(e)
    finally:
        upstream.stop()
    elapsed = time.time() - started

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"{next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), 'unknown cpu')}",
        "command": " ".join(["python3", "bench/run.py", *sys.argv[1:]]),
        "load": f"wrk -t1 -c{args.connections} -d{duration}s, {rounds} alternating round(s), median reported (the mean of the middle two for an even count)",
        "pinning": f"proxy on CPU {PROXY_CPU} with one worker thread; wrk, upstream nginx and identity on CPU {LOAD_CPU}",
        "shared": "the 2 cores are shared with other work on this machine (see loadavg per scenario)",
        "elapsed_s": round(elapsed),
        "binaries": {b: time.strftime("%H:%M UTC", time.gmtime((release / b).stat().st_mtime))
                     for b in ("portcullis-gateway", "portcullis-bench-floor", "portcullis-identity") if (release / b).exists()},
        "commit": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps({"meta": meta, "results": results, "failed": failed}, indent=2))
    built = ", ".join(f"{b} {t}" for b, t in meta["binaries"].items())
    lines = [f"{meta['date']}, `{meta['command']}` ({meta['elapsed_s']} s), tree {meta['commit']}, built: {built}  ",
             f"{meta['machine']}; {meta['pinning']}; {meta['load']}; {meta['shared']}.", ""]
    for key in ("1", "2", "3", "4", "5", "6"):
        if key in results:
            lines += table(key, results[key]) + [""]
    if "7" in results:
        lines += ["### Scenario 7: identity", "",
                  f"whoami driven by wrk (one thread, {args.connections} connections, one session token), "
                  "identity and PostgreSQL not pinned, PostgreSQL over loopback without TLS (`sslmode=disable`):", "",
                  "| database | whoami req/s | p99 ms | identity CPU µs/req | PostgreSQL CPU µs/req | cache hits / misses | loadavg before |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for db, r in results["7"].items():
            for key, label in (("whoami_wrk", db), ("whoami_wrk_nocache", f"{db}, whoami cache off")):
                if key not in r:
                    continue
                w = r[key]
                cache = f"{w['cache_hits']} / {w['cache_misses']}" if "cache_hits" in w else "–"
                lines.append(f"| {label} | {w['rps']:.0f} | {fmt(w['p99_ms'], '.2f')} | {w['identity_cpu_us_per_req']:.1f} | "
                             f"{fmt(w['postgres_cpu_us_per_req'], '.1f')} | {cache} | {' '.join(w['loadavg_before'])} |")
        lines += ["", "identity/examples/bench.rs (load client in the same process as the server):", ""]
        for db, r in results["7"].items():
            lines += [f"{db}, loadavg before: {' '.join(r['loadavg_before'])}", "", "```", r["output"], "```", ""]
    for key, error in failed.items():
        lines += [f"### Scenario {key}: FAILED", "", f"{error} (logs in {work})", ""]
    if "8" in chosen:
        lines += ["### Scenario 8: operator propagation", "",
                  "Needs a Kubernetes API server: measured by the e2e process suite (e2e/tests/cluster.rs when `KUBECONFIG` is set; e2e/tests/propagation.rs for the operator-side part) "
                  "(see docs/benchmarks.md, Operator), not by this harness.", ""]
    if "9" in chosen and "6" in results and "3" in results:
        r6 = results["6"]["summary"]
        big = r6.get("10000 rules") or list(r6.values())[-1]
        small = list(r6.values())[0]
        ident = results["3"]["summary"].get("cookie_session, no cache", {})
        lines += ["### Scenario 9: memory", "",
                  "| process | idle RSS MiB | peak RSS under load MiB |", "| --- | ---: | ---: |",
                  f"| gateway, {list(r6)[0]} | {small['idle_rss_kib'] / 1024:.1f} | {small['peak_rss_kib'] / 1024:.1f} |",
                  f"| gateway, 10000 rules | {big['idle_rss_kib'] / 1024:.1f} | {big['peak_rss_kib'] / 1024:.1f} |",
                  f"| identity (PostgreSQL), whoami load from scenario 3 | – | "
                  f"{fmt(ident.get('aux_peak_rss_kib', 0) / 1024 if ident.get('aux_peak_rss_kib') else None, '.1f')} |", ""]
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
